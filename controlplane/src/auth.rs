//! Authentication: who is calling, for which project, with which role.
//!
//! Modes (`--auth`):
//! - `noauth`: every request is an admin of one default project (local use, tests; the SDK
//!   then sends `X-Auth-Token: notused` and no project).
//! - `tokens:FILE`: a file of static tokens, one per line: `TOKEN PROJECT ROLE` (`#` starts a
//!   comment). ROLE is `admin`, `member` or `reader`. The documented default.
//! - `keystone:URL`: tokens validated against Keystone v3 (`GET URL/v3/auth/tokens` with the
//!   token as both `X-Auth-Token` and `X-Subject-Token`, which Keystone allows its subject to
//!   do); answers are cached until the token expires or for [`KEYSTONE_CACHE_TTL`], whichever
//!   comes first.
//!
//! Roles: `admin` sees and changes every project's resources; `member` reads and writes its
//! own project's (and reads shared ones); `reader` only reads them. A token with none of these
//! roles is refused (403).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::model::{ProjectId, Scope, Timestamp};

/// How long a Keystone validation is trusted at most.
pub const KEYSTONE_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most cached Keystone tokens.
const KEYSTONE_CACHE_MAX: usize = 10_000;

/// Errors of authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `X-Auth-Token`.
    #[error("Authentication required: send an X-Auth-Token header")]
    MissingToken,
    /// Unknown, expired or revoked token.
    #[error("The request you have made requires authentication: invalid or expired token")]
    InvalidToken,
    /// Valid token without admin, member or reader role, or without a project.
    #[error("The token has no project-scoped admin, member or reader role")]
    NoRole,
    /// Keystone did not answer usefully.
    #[error("the identity service could not validate the token: {0}")]
    Keystone(String),
    /// `--auth` is not one of the modes.
    #[error("unknown --auth mode '{0}': use noauth, tokens:FILE or keystone:URL")]
    BadMode(String),
    /// The token file cannot be read.
    #[error("cannot read the token file {0}: {1}")]
    TokenFile(PathBuf, std::io::Error),
    /// A line of the token file is wrong.
    #[error("{file}:{line}: {reason}")]
    TokenLine {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A role (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read only, own project.
    Reader,
    /// Read and write, own project.
    Member,
    /// Everything.
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "member" | "_member_" => Some(Role::Member),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The project the token is scoped to.
    pub project: ProjectId,
    /// The strongest role it has there.
    pub role: Role,
}

impl Principal {
    /// What the store lets this principal see and change.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::Member => Scope::Project {
                project: self.project.clone(),
                write: true,
            },
            Role::Reader => Scope::Project {
                project: self.project.clone(),
                write: false,
            },
        }
    }

    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The configured mode, parsed from `--auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// `noauth`: admin of this project.
    NoAuth(ProjectId),
    /// `tokens:FILE`.
    Tokens(PathBuf),
    /// `keystone:URL`.
    Keystone(String),
}

impl AuthConfig {
    /// Parses `noauth`, `tokens:FILE` or `keystone:URL`.
    pub fn parse(s: &str, default_project: &ProjectId) -> Result<AuthConfig, AuthError> {
        if s == "noauth" || s == "none" {
            return Ok(AuthConfig::NoAuth(default_project.clone()));
        }
        if let Some(f) = s.strip_prefix("tokens:").filter(|f| !f.is_empty()) {
            return Ok(AuthConfig::Tokens(PathBuf::from(f)));
        }
        if let Some(u) = s
            .strip_prefix("keystone:")
            .filter(|u| u.starts_with("http"))
        {
            return Ok(AuthConfig::Keystone(u.to_owned()));
        }
        Err(AuthError::BadMode(s.to_owned()))
    }
}

/// Reads a token file (see the module doc).
pub fn read_token_file(path: &Path) -> Result<HashMap<String, Principal>, AuthError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| AuthError::TokenFile(path.to_owned(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "token file is readable by group or others: chmod 600 it");
        }
    }
    parse_tokens(&text, path)
}

fn parse_tokens(text: &str, path: &Path) -> Result<HashMap<String, Principal>, AuthError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| AuthError::TokenLine {
            file: path.to_owned(),
            line: i + 1,
            reason,
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [token, project, role] = parts[..] else {
            return Err(bad("expected three fields: TOKEN PROJECT ROLE".into()));
        };
        let project = ProjectId::new(project).map_err(|e| bad(e.to_string()))?;
        let role = Role::parse(role).ok_or_else(|| {
            bad(format!(
                "unknown role '{role}': use admin, member or reader"
            ))
        })?;
        if out
            .insert(token.to_owned(), Principal { project, role })
            .is_some()
        {
            return Err(bad("this token appears twice".into()));
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct Keystone {
    base: String,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
}

/// Validates the tokens of requests in the configured mode.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    NoAuth(Principal),
    Tokens(HashMap<String, Principal>),
    Keystone(Keystone),
}

#[derive(Deserialize)]
struct KsBody {
    token: KsToken,
}

#[derive(Deserialize)]
struct KsToken {
    #[serde(default)]
    project: Option<KsProject>,
    #[serde(default)]
    roles: Vec<KsRole>,
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Deserialize)]
struct KsProject {
    id: String,
}

#[derive(Deserialize)]
struct KsRole {
    name: String,
}

impl Authenticator {
    /// Sets up `config` (reads the token file now).
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthError> {
        let mode = match config {
            AuthConfig::NoAuth(p) => Mode::NoAuth(Principal {
                project: p.clone(),
                role: Role::Admin,
            }),
            AuthConfig::Tokens(f) => Mode::Tokens(read_token_file(f)?),
            AuthConfig::Keystone(url) => {
                let base = url.trim_end_matches('/');
                let base = base.strip_suffix("/v3").unwrap_or(base).to_owned();
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| AuthError::Keystone(e.to_string()))?;
                Mode::Keystone(Keystone {
                    base,
                    client,
                    cache: Mutex::new(HashMap::new()),
                })
            }
        };
        Ok(Authenticator { mode })
    }

    /// The principal for a request carrying `token` (`X-Auth-Token`).
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        match &self.mode {
            Mode::NoAuth(p) => Ok(p.clone()),
            Mode::Tokens(map) => {
                let t = token.ok_or(AuthError::MissingToken)?;
                map.get(t).cloned().ok_or(AuthError::InvalidToken)
            }
            Mode::Keystone(ks) => {
                let t = token.ok_or(AuthError::MissingToken)?;
                ks.validate(t).await
            }
        }
    }

    /// Whether this is `noauth`.
    pub fn is_noauth(&self) -> bool {
        matches!(self.mode, Mode::NoAuth(_))
    }
}

impl Keystone {
    async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((p, until)) = cache.get(token)
            && *until > now
        {
            return Ok(p.clone());
        }
        let resp = self
            .client
            .get(format!("{}/v3/auth/tokens", self.base))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| AuthError::Keystone(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(AuthError::InvalidToken);
        }
        if !status.is_success() {
            return Err(AuthError::Keystone(format!("status {status}")));
        }
        let body: KsBody = resp
            .json()
            .await
            .map_err(|e| AuthError::Keystone(format!("unreadable answer: {e}")))?;
        let project = body
            .token
            .project
            .and_then(|p| ProjectId::new(&p.id).ok())
            .ok_or(AuthError::NoRole)?;
        let role = body
            .token
            .roles
            .iter()
            .filter_map(|r| Role::parse(&r.name))
            .max()
            .ok_or(AuthError::NoRole)?;
        let mut ttl = KEYSTONE_CACHE_TTL;
        if let Some(exp) = body
            .token
            .expires_at
            .as_deref()
            .and_then(parse_keystone_time)
        {
            let left = exp.0 - Timestamp::now().0;
            if left <= 0 {
                return Err(AuthError::InvalidToken);
            }
            ttl = ttl.min(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
        }
        let p = Principal { project, role };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= KEYSTONE_CACHE_MAX {
                cache.retain(|_, (_, until)| *until > now);
                if cache.len() >= KEYSTONE_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(token.to_owned(), (p.clone(), now + ttl));
        }
        Ok(p)
    }
}

/// Keystone's `2024-05-01T12:00:00.000000Z`: the seconds part is enough.
fn parse_keystone_time(s: &str) -> Option<Timestamp> {
    let head = s.get(..19)?;
    format!("{head}Z").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file() {
        let t = parse_tokens(
            "# comment\nsecret-a projA admin\n\nsecret-b projB member # trailing\nsecret-c projB reader\n",
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t["secret-a"].role, Role::Admin);
        assert_eq!(t["secret-b"].project.as_str(), "projB");
        assert!(parse_tokens("a b", Path::new("t")).is_err());
        assert!(parse_tokens("a b owner", Path::new("t")).is_err());
        assert!(parse_tokens("a b admin\na c admin", Path::new("t")).is_err());
    }

    #[test]
    fn modes() {
        let d = ProjectId::new("default").unwrap();
        assert_eq!(
            AuthConfig::parse("noauth", &d).unwrap(),
            AuthConfig::NoAuth(d.clone())
        );
        assert!(matches!(
            AuthConfig::parse("tokens:/etc/t", &d),
            Ok(AuthConfig::Tokens(_))
        ));
        assert!(matches!(
            AuthConfig::parse("keystone:http://k:5000", &d),
            Ok(AuthConfig::Keystone(_))
        ));
        assert!(AuthConfig::parse("tokens:", &d).is_err());
        assert!(AuthConfig::parse("basic", &d).is_err());
        assert_eq!(
            parse_keystone_time("2024-05-01T12:00:00.000000Z"),
            "2024-05-01T12:00:00Z".parse().ok()
        );
    }
}
