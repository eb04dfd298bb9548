//! The durable store: SQLite (embedded default) or PostgreSQL, one schema, one code path.
//!
//! ```text
//!   API request ──► Store::begin(scope, request id) ──► Tx ──┬─ get/list/insert/update/delete
//!                                                            ├─ claim_ip / claim_mac / claim_segment
//!                                                            └─ commit: revisions appended, then
//!                                                               the watch channel says "rev N"
//! ```
//!
//! Invariants:
//! - One request is one transaction ([`Tx`]): everything it changed is committed together or
//!   not at all (dropping a `Tx` rolls it back).
//! - Every change of a resource appends one row to `revisions` in the same transaction. Revision
//!   numbers come from the one-row `revision_counter`, updated as the transaction's last
//!   statement: on PostgreSQL its row lock orders committers, so whoever reads revision N
//!   committed also sees every revision below N (no gaps for a follower, issue 6).
//! - Project scoping happens here, in the SQL of every query: a [`Scope::Project`] sees its
//!   own rows and rows marked visible to all (shared and external networks, subnets of shared
//!   networks), and changes only its own rows. [`Scope::All`] is for admins and for the
//!   controller's own bookkeeping (gateway and floating IP ports).
//! - SQLite runs in WAL mode with `synchronous=FULL`; its writers are serialized by an
//!   in-process lock and `BEGIN IMMEDIATE` (with a busy timeout against other processes).
//!   PostgreSQL writers run concurrently at READ COMMITTED, taking row locks
//!   ([`Lock`]) where a read decides a write; unique keys decide races on addresses, MACs,
//!   VNIs and default groups.
//! - Serialization failures and deadlocks ([`StoreError::is_retryable`]) are retried by the
//!   caller from the start of the request.

mod migrate;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::ipam;
use crate::model::{
    FloatingIp, Network, Node, Port, PortForwarding, ProjectId, Resource, ResourceKind, Revision,
    Router, Scope, SecurityGroup, SecurityGroupId, SecurityGroupRule, Subnet, Timestamp,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored document does not parse (a bug or a hand-edited database).
    #[error("stored {kind} {id} is unreadable: {reason}")]
    Corrupt {
        /// Kind of resource.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The parse error.
        reason: String,
    },
    /// `--db` is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://...")]
    BadUrl(String),
    /// A migration failed.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Migration {
        /// Its number.
        version: i64,
        /// Its name.
        name: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// The database has a newer schema than this program knows.
    #[error("the database has schema version {0}, newer than this weft ({1}): upgrade weft")]
    SchemaTooNew(i64, i64),
    /// The scope may not write (a reader), or may not write this row.
    #[error("the request's credentials do not allow this change")]
    Forbidden,
    /// An update or delete found no row (removed concurrently, or out of scope).
    #[error("{0} {1} could not be found")]
    Missing(&'static str, String),
    /// I/O around the database (creating its directory).
    #[error("cannot create the database directory {0}: {1}")]
    Io(String, std::io::Error),
}

impl StoreError {
    /// Whether running the whole request again may succeed: serialization failures and
    /// deadlocks (PostgreSQL), busy or locked databases (SQLite).
    pub fn is_retryable(&self) -> bool {
        let StoreError::Db(sqlx::Error::Database(db)) = self else {
            return matches!(self, StoreError::Db(sqlx::Error::PoolTimedOut));
        };
        matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "5" | "6" | "517" | "261" | "262")
        )
    }
}

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (one file, WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How a read inside a transaction locks the row (PostgreSQL; SQLite writers are serialized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// No lock.
    None,
    /// Others may read-lock too, nobody may change it until commit (`FOR SHARE`).
    Share,
    /// Exclusive (`FOR UPDATE`).
    Update,
}

/// What a revision did to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Created.
    Create,
    /// Changed.
    Update,
    /// Deleted.
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// Its number.
    pub revision: Revision,
    /// The kind of resource changed.
    pub resource_type: ResourceKind,
    /// Its id.
    pub resource_id: String,
    /// What happened.
    pub operation: Operation,
    /// The resource's project.
    pub project_id: ProjectId,
    /// The API request that made the change.
    pub request_id: String,
    /// When.
    pub at: Timestamp,
}

/// Every resource, as of one revision (read in one transaction).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last revision included.
    pub revision: Revision,
    /// Networks.
    pub networks: Vec<Network>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Routers.
    pub routers: Vec<Router>,
    /// Floating IPs.
    pub floating_ips: Vec<FloatingIp>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroup>,
    /// Security group rules.
    pub security_group_rules: Vec<SecurityGroupRule>,
    /// Floating IP port forwardings.
    #[serde(default)]
    pub port_forwardings: Vec<PortForwarding>,
    /// Registered nodes.
    pub nodes: Vec<Node>,
}

/// One row of the allocation history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationEvent {
    /// The revision of the transaction that made it.
    pub revision: Revision,
    /// `allocate` or `release`.
    pub action: String,
    /// The subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: IpAddr,
    /// The port that got or gave back the address.
    pub port_id: String,
    /// The port's project.
    pub project_id: ProjectId,
    /// The API request.
    pub request_id: String,
    /// When.
    pub at: Timestamp,
}

/// Equality filters the store applies in SQL (the API applies the rest).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these ids.
    pub ids: Option<Vec<String>>,
    /// This name.
    pub name: Option<String>,
    /// This parent (network of a subnet or port, group of a rule, ...).
    pub parent: Option<String>,
    /// This reference (a floating IP's port, a rule's remote group).
    pub reference: Option<String>,
    /// This device id (ports).
    pub device: Option<String>,
    /// This project.
    pub project: Option<ProjectId>,
}

impl Filter {
    /// Only the children of `parent`.
    pub fn parent(parent: impl ToString) -> Self {
        Filter {
            parent: Some(parent.to_string()),
            ..Filter::default()
        }
    }
}

/// Options for opening the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
        }
    }
}

#[derive(Debug)]
struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// Serializes SQLite writers inside this process.
    writer: Arc<Mutex<()>>,
    latest: watch::Sender<Revision>,
}

/// The store (cheap to clone: a handle).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The `sqlite://` URL for a database file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite://PATH` (or
    /// `sqlite:PATH`) or `postgres://USER:PASSWORD@HOST:PORT/DB` (`postgresql://` too; a
    /// `host=/run/postgresql` query parameter selects a Unix socket).
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.to_owned()));
            }
            if let Some(dir) = Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
            }
            let query = if query.is_empty() {
                "mode=rwc".to_owned()
            } else {
                format!("{query}&mode=rwc")
            };
            (Backend::Sqlite, format!("sqlite://{path}?{query}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=FULL").await?;
                    conn.execute("PRAGMA busy_timeout=10000").await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect(&url).await?;
        migrate::run(&pool, backend).await?;
        let rev: i64 = sqlx::query("SELECT revision FROM revision_counter WHERE id = 1")
            .fetch_one(&pool)
            .await?
            .try_get(0)?;
        let (latest, _) = watch::channel(Revision(u64::try_from(rev).unwrap_or(0)));
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                writer: Arc::new(Mutex::new(())),
                latest,
            }),
        })
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The latest committed revision, updated after every commit of this process.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.inner.latest.subscribe()
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Starts a write transaction for `scope`, on behalf of API request `request_id`.
    /// Refused for a scope that may not write.
    pub async fn begin(&self, scope: &Scope, request_id: &str) -> Result<Tx, StoreError> {
        if !scope.writes() {
            return Err(StoreError::Forbidden);
        }
        let (guard, tx) = match self.inner.backend {
            Backend::Sqlite => {
                let g = self.inner.writer.clone().lock_owned().await;
                (
                    Some(g),
                    self.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
                )
            }
            Backend::Postgres => (None, self.inner.pool.begin().await?),
        };
        Ok(Tx {
            tx,
            _guard: guard,
            store: self.clone(),
            request_id: request_id.to_owned(),
            changes: Vec::new(),
            history: Vec::new(),
            now: Timestamp::now(),
        })
    }

    /// One resource, if `scope` may see it.
    pub async fn get<T: Resource>(&self, scope: &Scope, id: &str) -> Result<Option<T>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        get_row::<T>(&mut conn, self.inner.backend, scope, id, Lock::None).await
    }

    /// Every resource of a kind that `scope` may see and that matches `filter`, by id.
    pub async fn list<T: Resource>(
        &self,
        scope: &Scope,
        filter: &Filter,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        list_rows::<T>(&mut conn, scope, filter).await
    }

    /// Every resource, read in one transaction, with the revision it reflects.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let begin = match self.inner.backend {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut tx = self.inner.pool.begin_with(begin).await?;
        let rev: i64 = sqlx::query("SELECT revision FROM revision_counter WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let all = Filter::default();
        let snap = Snapshot {
            revision: Revision(u64::try_from(rev).unwrap_or(0)),
            networks: list_rows(&mut tx, &Scope::All, &all).await?,
            subnets: list_rows(&mut tx, &Scope::All, &all).await?,
            ports: list_rows(&mut tx, &Scope::All, &all).await?,
            routers: list_rows(&mut tx, &Scope::All, &all).await?,
            floating_ips: list_rows(&mut tx, &Scope::All, &all).await?,
            security_groups: list_rows(&mut tx, &Scope::All, &all).await?,
            security_group_rules: list_rows(&mut tx, &Scope::All, &all).await?,
            port_forwardings: list_rows(&mut tx, &Scope::All, &all).await?,
            nodes: list_rows(&mut tx, &Scope::All, &all).await?,
        };
        tx.rollback().await?;
        Ok(snap)
    }

    /// The change log after `since`, oldest first, at most `limit` entries.
    pub async fn changes_since(
        &self,
        since: Revision,
        limit: u32,
    ) -> Result<Vec<RevisionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT revision, resource_type, resource_id, operation, project_id, request_id, at \
             FROM revisions WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(i64::try_from(since.0).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(revision_record).collect()
    }

    /// The allocation history visible to `scope`, newest first: optionally of one subnet or
    /// one port, at most `limit` entries.
    pub async fn allocation_history(
        &self,
        scope: &Scope,
        subnet: Option<&str>,
        port: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AllocationEvent>, StoreError> {
        let (all, project) = scope_params(scope);
        let rows = sqlx::query(
            "SELECT revision, action, subnet_id, ip_address, port_id, project_id, request_id, at \
             FROM allocation_history \
             WHERE ($1 = 1 OR project_id = $2) AND ($3 IS NULL OR subnet_id = $3) \
               AND ($4 IS NULL OR port_id = $4) \
             ORDER BY revision DESC, seq DESC LIMIT $5",
        )
        .bind(all)
        .bind(project)
        .bind(subnet.map(str::to_owned))
        .bind(port.map(str::to_owned))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let ip: String = r.try_get(3)?;
                let at: String = r.try_get(7)?;
                let rev: i64 = r.try_get(0)?;
                Ok(AllocationEvent {
                    revision: Revision(u64::try_from(rev).unwrap_or(0)),
                    action: r.try_get(1)?,
                    subnet_id: r.try_get(2)?,
                    ip_address: ip
                        .parse()
                        .map_err(|_| corrupt("allocation", &ip, "bad address"))?,
                    port_id: r.try_get(4)?,
                    project_id: project_from_db(r.try_get(5)?),
                    request_id: r.try_get(6)?,
                    at: at
                        .parse()
                        .map_err(|_| corrupt("allocation", &ip, "bad timestamp"))?,
                })
            })
            .collect()
    }

    /// Number of allocated addresses per subnet id.
    pub async fn allocation_counts(&self) -> Result<HashMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT subnet_id, COUNT(*) FROM ip_allocations GROUP BY subnet_id")
            .fetch_all(&self.inner.pool)
            .await?;
        let mut out = HashMap::new();
        for r in rows {
            let n: i64 = r.try_get(1)?;
            out.insert(r.try_get::<String, _>(0)?, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// The default security group of `project`, if it has one already.
    pub async fn default_security_group(
        &self,
        project: &ProjectId,
    ) -> Result<Option<SecurityGroupId>, StoreError> {
        let row = sqlx::query(
            "SELECT security_group_id FROM default_security_groups WHERE project_id = $1",
        )
        .bind(project.as_str().to_owned())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|r| {
            let s: String = r.try_get(0)?;
            s.parse()
                .map_err(|_| corrupt("security_group", &s, "bad id"))
        })
        .transpose()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.inner.pool).await?;
        Ok(())
    }
}

fn corrupt(kind: &'static str, id: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        kind,
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

fn project_from_db(s: String) -> ProjectId {
    ProjectId::new(&s).unwrap_or_else(|_| ProjectId::system())
}

fn revision_record(r: &AnyRow) -> Result<RevisionRecord, StoreError> {
    let rev: i64 = r.try_get(0)?;
    let kind: String = r.try_get(1)?;
    let id: String = r.try_get(2)?;
    let op: String = r.try_get(3)?;
    let at: String = r.try_get(6)?;
    Ok(RevisionRecord {
        revision: Revision(u64::try_from(rev).unwrap_or(0)),
        resource_type: ResourceKind::parse(&kind)
            .ok_or_else(|| corrupt("revision", &id, "bad kind"))?,
        operation: match op.as_str() {
            "create" => Operation::Create,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            _ => return Err(corrupt("revision", &id, "bad operation")),
        },
        resource_id: id,
        project_id: project_from_db(r.try_get(4)?),
        request_id: r.try_get(5)?,
        at: at
            .parse()
            .map_err(|_| corrupt("revision", &rev.to_string(), "bad timestamp"))?,
    })
}

/// (all-projects flag, project) parameters for scoped SQL.
fn scope_params(scope: &Scope) -> (i64, String) {
    match scope {
        Scope::All => (1, String::new()),
        Scope::Project { project, .. } => (0, project.as_str().to_owned()),
    }
}

fn lock_clause(backend: Backend, lock: Lock) -> &'static str {
    match (backend, lock) {
        (Backend::Postgres, Lock::Share) => " FOR SHARE",
        (Backend::Postgres, Lock::Update) => " FOR UPDATE",
        _ => "",
    }
}

fn decode<T: Resource>(id: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt(T::KIND.as_str(), id, e))
}

async fn get_row<T: Resource>(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<T>, StoreError> {
    let (all, project) = scope_params(scope);
    let sql = format!(
        "SELECT body FROM resources WHERE kind = $1 AND id = $2 \
         AND ($3 = 1 OR project_id = $4 OR visible = 1){}",
        lock_clause(backend, lock)
    );
    let row = sqlx::query(&sql)
        .bind(T::KIND.as_str())
        .bind(id.to_owned())
        .bind(all)
        .bind(project)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let body: String = r.try_get(0)?;
            decode(id, &body).map(Some)
        }
    }
}

async fn list_rows<T: Resource>(
    conn: &mut sqlx::AnyConnection,
    scope: &Scope,
    f: &Filter,
) -> Result<Vec<T>, StoreError> {
    let (all, project) = scope_params(scope);
    let mut sql = String::from(
        "SELECT id, body FROM resources WHERE kind = $1 AND ($2 = 1 OR project_id = $3 OR visible = 1)",
    );
    let mut binds: Vec<String> = Vec::new();
    let mut push = |sql: &mut String, col: &str, v: &str| {
        binds.push(v.to_owned());
        sql.push_str(&format!(" AND {col} = ${}", binds.len() + 3));
    };
    if let Some(n) = &f.name {
        push(&mut sql, "name", n);
    }
    if let Some(p) = &f.parent {
        push(&mut sql, "parent_id", p);
    }
    if let Some(r) = &f.reference {
        push(&mut sql, "ref_id", r);
    }
    if let Some(d) = &f.device {
        push(&mut sql, "device_id", d);
    }
    if let Some(p) = &f.project {
        push(&mut sql, "project_id", p.as_str());
    }
    if let Some(ids) = &f.ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut parts = Vec::new();
        for id in ids {
            binds.push(id.clone());
            parts.push(format!("${}", binds.len() + 3));
        }
        sql.push_str(&format!(" AND id IN ({})", parts.join(", ")));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sqlx::query(&sql)
        .bind(T::KIND.as_str())
        .bind(all)
        .bind(project);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let body: String = r.try_get(1)?;
            decode(&id, &body)
        })
        .collect()
}

/// A pending allocation-history row.
#[derive(Debug)]
struct PendingHistory {
    action: &'static str,
    subnet_id: String,
    ip_address: String,
    port_id: String,
    project_id: String,
}

/// A write transaction (see the module invariants). Dropping it without [`Tx::commit`] rolls
/// everything back.
#[derive(Debug)]
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
    store: Store,
    request_id: String,
    changes: Vec<(ResourceKind, String, Operation, ProjectId)>,
    history: Vec<PendingHistory>,
    now: Timestamp,
}

impl Tx {
    /// The time this transaction stamps on what it changes.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.store.inner.backend
    }

    /// One resource, if `scope` may see it, optionally locking its row.
    pub async fn get<T: Resource>(
        &mut self,
        scope: &Scope,
        id: &str,
        lock: Lock,
    ) -> Result<Option<T>, StoreError> {
        let backend = self.backend();
        get_row::<T>(&mut self.tx, backend, scope, id, lock).await
    }

    /// Resources of a kind that `scope` may see and that match `filter`.
    pub async fn list<T: Resource>(
        &mut self,
        scope: &Scope,
        filter: &Filter,
    ) -> Result<Vec<T>, StoreError> {
        list_rows::<T>(&mut self.tx, scope, filter).await
    }

    /// Stores a new resource (its standard attributes stamped now). Refused if `scope` may not
    /// write in the resource's project.
    pub async fn insert<T: Resource>(
        &mut self,
        scope: &Scope,
        r: &mut T,
    ) -> Result<(), StoreError> {
        if !scope.may_write(r.project()) {
            return Err(StoreError::Forbidden);
        }
        *r.std_mut() = crate::model::StandardAttrs::new(self.now);
        let body =
            serde_json::to_string(&*r).map_err(|e| corrupt(T::KIND.as_str(), &r.key(), e))?;
        sqlx::query(
            "INSERT INTO resources (kind, id, project_id, name, parent_id, ref_id, device_id, visible, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(T::KIND.as_str())
        .bind(r.key())
        .bind(r.project().as_str().to_owned())
        .bind(r.name().to_owned())
        .bind(r.parent())
        .bind(r.reference())
        .bind(r.device().map(str::to_owned))
        .bind(i64::from(r.visible_to_all()))
        .bind(body)
        .execute(&mut *self.tx)
        .await?;
        self.changes
            .push((T::KIND, r.key(), Operation::Create, r.project().clone()));
        Ok(())
    }

    /// Writes a changed resource: revision number + 1, `updated_at` now. Refused if `scope`
    /// may not write it; [`StoreError::Missing`] if it is gone.
    pub async fn update<T: Resource>(
        &mut self,
        scope: &Scope,
        r: &mut T,
    ) -> Result<(), StoreError> {
        if !scope.may_write(r.project()) {
            return Err(StoreError::Forbidden);
        }
        let now = self.now;
        r.std_mut().bump(now);
        let body =
            serde_json::to_string(&*r).map_err(|e| corrupt(T::KIND.as_str(), &r.key(), e))?;
        let (all, project) = scope_params(scope);
        let res = sqlx::query(
            "UPDATE resources SET name = $1, parent_id = $2, ref_id = $3, device_id = $4, \
             visible = $5, body = $6 WHERE kind = $7 AND id = $8 AND ($9 = 1 OR project_id = $10)",
        )
        .bind(r.name().to_owned())
        .bind(r.parent())
        .bind(r.reference())
        .bind(r.device().map(str::to_owned))
        .bind(i64::from(r.visible_to_all()))
        .bind(body)
        .bind(T::KIND.as_str())
        .bind(r.key())
        .bind(all)
        .bind(project)
        .execute(&mut *self.tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::Missing(T::KIND.as_str(), r.key()));
        }
        self.changes
            .push((T::KIND, r.key(), Operation::Update, r.project().clone()));
        Ok(())
    }

    /// Deletes a resource. Refused if `scope` may not write it; [`StoreError::Missing`] if
    /// it is gone.
    pub async fn delete<T: Resource>(&mut self, scope: &Scope, r: &T) -> Result<(), StoreError> {
        if !scope.may_write(r.project()) {
            return Err(StoreError::Forbidden);
        }
        let (all, project) = scope_params(scope);
        let res = sqlx::query(
            "DELETE FROM resources WHERE kind = $1 AND id = $2 AND ($3 = 1 OR project_id = $4)",
        )
        .bind(T::KIND.as_str())
        .bind(r.key())
        .bind(all)
        .bind(project)
        .execute(&mut *self.tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::Missing(T::KIND.as_str(), r.key()));
        }
        self.changes
            .push((T::KIND, r.key(), Operation::Delete, r.project().clone()));
        Ok(())
    }

    /// Marks the children of `parent` (e.g. a network's subnets) as visible to every project
    /// or not.
    pub async fn set_children_visible(
        &mut self,
        kind: ResourceKind,
        parent: &str,
        visible: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE resources SET visible = $1 WHERE kind = $2 AND parent_id = $3")
            .bind(i64::from(visible))
            .bind(kind.as_str())
            .bind(parent.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Marks one resource visible to every project or not.
    pub async fn set_visible(
        &mut self,
        kind: ResourceKind,
        id: &str,
        visible: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE resources SET visible = $1 WHERE kind = $2 AND id = $3")
            .bind(i64::from(visible))
            .bind(kind.as_str())
            .bind(id.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Allocates `ip` in `subnet` to `port` if nobody has it; `false` if taken (possibly by a
    /// concurrent transaction that committed first). Records the allocation in the history.
    pub async fn claim_ip(
        &mut self,
        subnet: &Subnet,
        ip: IpAddr,
        port: &str,
        project: &ProjectId,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "INSERT INTO ip_allocations (subnet_id, ip_address, network_id, port_id, project_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(subnet.id.to_string())
        .bind(ip.to_string())
        .bind(subnet.network_id.to_string())
        .bind(port.to_owned())
        .bind(project.as_str().to_owned())
        .execute(&mut *self.tx)
        .await?;
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        self.history.push(PendingHistory {
            action: "allocate",
            subnet_id: subnet.id.to_string(),
            ip_address: ip.to_string(),
            port_id: port.to_owned(),
            project_id: project.as_str().to_owned(),
        });
        Ok(true)
    }

    /// Gives back an address of `port` (history recorded); nothing if it was not allocated.
    pub async fn release_ip(
        &mut self,
        subnet: &str,
        ip: IpAddr,
        port: &str,
        project: &ProjectId,
    ) -> Result<(), StoreError> {
        let res = sqlx::query(
            "DELETE FROM ip_allocations WHERE subnet_id = $1 AND ip_address = $2 AND port_id = $3",
        )
        .bind(subnet.to_owned())
        .bind(ip.to_string())
        .bind(port.to_owned())
        .execute(&mut *self.tx)
        .await?;
        if res.rows_affected() > 0 {
            self.history.push(PendingHistory {
                action: "release",
                subnet_id: subnet.to_owned(),
                ip_address: ip.to_string(),
                port_id: port.to_owned(),
                project_id: project.as_str().to_owned(),
            });
        }
        Ok(())
    }

    /// The allocated addresses of a subnet, as numbers.
    pub async fn allocated(&mut self, subnet: &str) -> Result<HashSet<u128>, StoreError> {
        let rows = sqlx::query("SELECT ip_address FROM ip_allocations WHERE subnet_id = $1")
            .bind(subnet.to_owned())
            .fetch_all(&mut *self.tx)
            .await?;
        let mut out = HashSet::with_capacity(rows.len());
        for r in rows {
            let s: String = r.try_get(0)?;
            let ip = IpAddr::from_str(&s).map_err(|_| corrupt("allocation", &s, "bad address"))?;
            out.insert(ipam::to_u128(ip));
        }
        Ok(out)
    }

    /// The port holding `ip` in `subnet`, if any.
    pub async fn ip_owner(
        &mut self,
        subnet: &str,
        ip: IpAddr,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT port_id FROM ip_allocations WHERE subnet_id = $1 AND ip_address = $2",
        )
        .bind(subnet.to_owned())
        .bind(ip.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The ports holding addresses in `subnet`.
    pub async fn ports_on_subnet(&mut self, subnet: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT port_id FROM ip_allocations WHERE subnet_id = $1")
            .bind(subnet.to_owned())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Takes `mac` in `network` for `port`; `false` if another port has it.
    pub async fn claim_mac(
        &mut self,
        network: &str,
        mac: &str,
        port: &str,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "INSERT INTO mac_addresses (network_id, mac_address, port_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(network.to_owned())
        .bind(mac.to_owned())
        .bind(port.to_owned())
        .execute(&mut *self.tx)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Gives back a port's MAC.
    pub async fn release_mac(
        &mut self,
        network: &str,
        mac: &str,
        port: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM mac_addresses WHERE network_id = $1 AND mac_address = $2 AND port_id = $3",
        )
        .bind(network.to_owned())
        .bind(mac.to_owned())
        .bind(port.to_owned())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Takes a segment (a VNI, a physical network) for `network`; `false` if in use.
    pub async fn claim_segment(
        &mut self,
        network_type: &str,
        key: &str,
        network: &str,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "INSERT INTO segments (network_type, segment_key, network_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(network_type.to_owned())
        .bind(key.to_owned())
        .bind(network.to_owned())
        .execute(&mut *self.tx)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// The segment keys in use for a network type.
    pub async fn segments_in_use(&mut self, network_type: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT segment_key FROM segments WHERE network_type = $1")
            .bind(network_type.to_owned())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Gives back a network's segments.
    pub async fn release_segments(&mut self, network: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM segments WHERE network_id = $1")
            .bind(network.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Records `group` as `project`'s default group; `false` if it already has one.
    pub async fn claim_default_group(
        &mut self,
        project: &ProjectId,
        group: &SecurityGroupId,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(project.as_str().to_owned())
        .bind(group.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// The default group of `project`, if any.
    pub async fn default_group(
        &mut self,
        project: &ProjectId,
    ) -> Result<Option<SecurityGroupId>, StoreError> {
        let row = sqlx::query(
            "SELECT security_group_id FROM default_security_groups WHERE project_id = $1",
        )
        .bind(project.as_str().to_owned())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| {
            let s: String = r.try_get(0)?;
            s.parse()
                .map_err(|_| corrupt("security_group", &s, "bad id"))
        })
        .transpose()
    }

    /// Forgets a project's default group (when it is deleted by an admin with the project).
    pub async fn forget_default_group(
        &mut self,
        group: &SecurityGroupId,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM default_security_groups WHERE security_group_id = $1")
            .bind(group.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Appends the revisions and allocation history, commits, and announces the new latest
    /// revision. Returns it (unchanged if nothing was written).
    pub async fn commit(mut self) -> Result<Revision, StoreError> {
        let n = self.changes.len();
        if n == 0 {
            self.tx.commit().await?;
            return Ok(*self.store.inner.latest.borrow());
        }
        let at = self.now.to_string();
        let last: i64 = sqlx::query(
            "UPDATE revision_counter SET revision = revision + $1 WHERE id = 1 RETURNING revision",
        )
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_one(&mut *self.tx)
        .await?
        .try_get(0)?;
        let first = last - i64::try_from(n).unwrap_or(0) + 1;
        for (i, (kind, id, op, project)) in self.changes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO revisions (revision, resource_type, resource_id, operation, project_id, request_id, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(first + i64::try_from(i).unwrap_or(0))
            .bind(kind.as_str())
            .bind(id.clone())
            .bind(op.as_str())
            .bind(project.as_str().to_owned())
            .bind(self.request_id.clone())
            .bind(at.clone())
            .execute(&mut *self.tx)
            .await?;
        }
        for (seq, h) in self.history.iter().enumerate() {
            sqlx::query(
                "INSERT INTO allocation_history (revision, seq, action, subnet_id, ip_address, port_id, project_id, request_id, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(last)
            .bind(i64::try_from(seq).unwrap_or(0))
            .bind(h.action)
            .bind(h.subnet_id.clone())
            .bind(h.ip_address.clone())
            .bind(h.port_id.clone())
            .bind(h.project_id.clone())
            .bind(self.request_id.clone())
            .bind(at.clone())
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        let rev = Revision(u64::try_from(last).unwrap_or(0));
        self.store.inner.latest.send_if_modified(|cur| {
            if rev > *cur {
                *cur = rev;
                true
            } else {
                false
            }
        });
        Ok(rev)
    }
}
