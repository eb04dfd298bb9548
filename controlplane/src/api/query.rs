//! List queries: filters, `fields`, sorting and pagination, on rendered resource views.
//!
//! ```text
//!   GET /v2.0/ports?network_id=N&device_owner=compute:nova&fields=id&fields=name
//!                  &sort_key=name&sort_dir=asc&limit=50&marker=<id of the last one seen>
//! ```
//! - A filter compares an attribute of the view with one or more values (repeated keys: any
//!   of them). Booleans accept `true`/`false`/`1`/`0` in any case; lists (e.g. a network's
//!   `subnets`) match if they contain the value; `null` matches the empty string. Filtering on
//!   an attribute the resource does not have is refused (Neutron's `filter-validation`).
//! - `tags`, `tags-any`, `not-tags`, `not-tags-any` take comma-separated tags. Ports accept
//!   `fixed_ips=ip_address=A` and `fixed_ips=subnet_id=S`.
//! - `fields` (repeated or comma-separated) keeps only those attributes.
//! - Sorting is stable; `id` breaks ties. `limit` with `marker` pages forward (`page_reverse`
//!   backwards); a page that is followed by more results carries a `<collection>_links` next
//!   link, as Neutron's.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::store::Filter;

/// Parameters of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Attribute filters: (attribute, accepted values).
    pub filters: Vec<(String, Vec<String>)>,
    /// Attributes to keep (empty: all).
    pub fields: Vec<String>,
    /// (key, ascending).
    pub sort: Vec<(String, bool)>,
    /// Page size.
    pub limit: Option<usize>,
    /// Id of the item before the page.
    pub marker: Option<String>,
    /// Page backwards from the marker.
    pub page_reverse: bool,
    /// The raw query pairs (to build links).
    raw: Vec<(String, String)>,
}

/// Keys that are not attribute filters.
const CONTROL: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
];
/// Tag filters.
const TAG_FILTERS: &[&str] = &["tags", "tags-any", "not-tags", "not-tags-any"];

impl ListParams {
    /// Parses a query string.
    pub fn parse(query: Option<&str>) -> Result<ListParams, ApiError> {
        let raw: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut p = ListParams {
            raw: raw.clone(),
            ..ListParams::default()
        };
        let mut keys = Vec::new();
        let mut dirs = Vec::new();
        for (k, v) in raw {
            match k.as_str() {
                "fields" => p
                    .fields
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
                "sort_key" => keys.push(v),
                "sort_dir" => match v.as_str() {
                    "asc" => dirs.push(true),
                    "desc" => dirs.push(false),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "{v} is an invalid value for sort_dir, valid values are 'asc' and 'desc'"
                        )));
                    }
                },
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Invalid input for limit. Reason: '{v}' is not an integer."
                        ))
                    })?;
                    if n < 0 {
                        return Err(ApiError::bad_request(format!(
                            "Invalid input for limit. Reason: '{v}' should be non-negative."
                        )));
                    }
                    // limit=0 means no limit, as in Neutron.
                    p.limit = usize::try_from(n).ok().filter(|n| *n > 0);
                }
                "marker" => p.marker = Some(v),
                "page_reverse" => {
                    p.page_reverse = matches!(v.to_ascii_lowercase().as_str(), "true" | "1")
                }
                _ => {
                    let k = if k == "tenant_id" {
                        "project_id".to_owned()
                    } else {
                        k
                    };
                    match p.filters.iter_mut().find(|(fk, _)| *fk == k) {
                        Some((_, vals)) => vals.push(v),
                        None => p.filters.push((k, vec![v])),
                    }
                }
            }
        }
        if !dirs.is_empty() && dirs.len() != keys.len() {
            return Err(ApiError::bad_request(
                "The number of sort_keys and sort_dirs must be same",
            ));
        }
        p.sort = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, dirs.get(i).copied().unwrap_or(true)))
            .collect();
        Ok(p)
    }

    /// The filters the store can apply in SQL: single-valued `id`, `name`, `project_id` and
    /// the parent attribute (`network_id`, `security_group_id`, ...).
    pub fn store_filter(&self, parent_attr: Option<&str>) -> Filter {
        let mut f = Filter::default();
        for (k, vals) in &self.filters {
            match k.as_str() {
                "id" => f.ids = Some(vals.clone()),
                "name" if vals.len() == 1 => f.name = Some(vals[0].clone()),
                k if Some(k) == parent_attr && vals.len() == 1 => f.parent = Some(vals[0].clone()),
                "device_id" if parent_attr == Some("network_id") && vals.len() == 1 => {
                    f.device = Some(vals[0].clone());
                }
                _ => {}
            }
        }
        f
    }

    /// Filters, sorts, pages and trims `views` into the response body
    /// `{"<collection>": [...], "<collection>_links": [...]}`. `url` is the collection's
    /// absolute URL (for links).
    pub fn respond(
        &self,
        collection: &str,
        views: Vec<Value>,
        url: &str,
    ) -> Result<Value, ApiError> {
        let mut items = Vec::with_capacity(views.len());
        for v in views {
            if self.matches(&v)? {
                items.push(v);
            }
        }
        for (k, _) in &self.sort {
            if let Some(first) = items.first()
                && first.get(k).is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "{k} is an invalid attribute for sort_keys"
                )));
            }
        }
        let mut keys = self.sort.clone();
        if !keys.iter().any(|(k, _)| k == "id") {
            keys.push(("id".to_owned(), keys.first().is_none_or(|k| k.1)));
        }
        items.sort_by(|a, b| {
            for (k, asc) in &keys {
                let o = cmp_values(a.get(k), b.get(k));
                if o != Ordering::Equal {
                    return if *asc { o } else { o.reverse() };
                }
            }
            Ordering::Equal
        });
        let mut links = Vec::new();
        if let Some(limit) = self.limit {
            let pos = match &self.marker {
                None => None,
                Some(m) => Some(
                    items
                        .iter()
                        .position(|v| v.get("id").and_then(Value::as_str) == Some(m.as_str()))
                        .ok_or_else(|| {
                            ApiError::new(
                                axum::http::StatusCode::NOT_FOUND,
                                "NotFound",
                                format!("Marker {m} could not be found."),
                            )
                        })?,
                ),
            };
            let (page, more_after, more_before): (Vec<Value>, bool, bool) = if self.page_reverse {
                let end = pos.unwrap_or(items.len());
                let start = end.saturating_sub(limit);
                (items[start..end].to_vec(), end < items.len(), start > 0)
            } else {
                let start = pos.map_or(0, |p| p + 1);
                let end = (start + limit).min(items.len());
                (items[start..end].to_vec(), end < items.len(), start > 0)
            };
            let id_of = |v: Option<&Value>| {
                v.and_then(|v| v.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            if more_after && let Some(last) = id_of(page.last()) {
                links.push(json!({"rel": "next", "href": self.link(url, limit, &last, false)}));
            }
            if more_before && let Some(first) = id_of(page.first()) {
                links.push(json!({"rel": "previous", "href": self.link(url, limit, &first, true)}));
            }
            items = page;
        }
        let items: Vec<Value> = items.into_iter().map(|v| self.trim(v)).collect();
        let mut out = Map::new();
        out.insert(collection.to_owned(), Value::Array(items));
        if !links.is_empty() {
            out.insert(format!("{collection}_links"), Value::Array(links));
        }
        Ok(Value::Object(out))
    }

    fn link(&self, url: &str, limit: usize, marker: &str, reverse: bool) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.raw {
            if !matches!(k.as_str(), "limit" | "marker" | "page_reverse") {
                s.append_pair(k, v);
            }
        }
        s.append_pair("limit", &limit.to_string());
        s.append_pair("marker", marker);
        if reverse {
            s.append_pair("page_reverse", "True");
        }
        format!("{url}?{}", s.finish())
    }

    /// Keeps only the requested fields of one view.
    pub fn trim(&self, v: Value) -> Value {
        trim_fields(v, &self.fields)
    }

    fn matches(&self, v: &Value) -> Result<bool, ApiError> {
        for (k, vals) in &self.filters {
            if CONTROL.contains(&k.as_str()) {
                continue;
            }
            if TAG_FILTERS.contains(&k.as_str()) {
                let have: Vec<&str> = v
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let want: Vec<&str> = vals
                    .iter()
                    .flat_map(|s| s.split(','))
                    .filter(|s| !s.is_empty())
                    .collect();
                let all = want.iter().all(|t| have.contains(t));
                let any = want.iter().any(|t| have.contains(t));
                let ok = match k.as_str() {
                    "tags" => all,
                    "tags-any" => any,
                    "not-tags" => !all,
                    _ => !any,
                };
                if !ok {
                    return Ok(false);
                }
                continue;
            }
            if k == "fixed_ips" {
                if !fixed_ips_match(v, vals)? {
                    return Ok(false);
                }
                continue;
            }
            let Some(attr) = v.get(k) else {
                return Err(ApiError::bad_request(format!(
                    "[{k}] is invalid attribute for filtering"
                )));
            };
            if !vals.iter().any(|want| value_matches(attr, want)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Keeps only `fields` of an object (all if empty).
pub fn trim_fields(v: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return v;
    }
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        other => other,
    }
}

fn fixed_ips_match(v: &Value, vals: &[String]) -> Result<bool, ApiError> {
    let ips = v
        .get("fixed_ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut by_key: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in vals {
        let Some((key, want)) = c.split_once('=') else {
            return Err(ApiError::bad_request(format!(
                "Invalid fixed_ips filter '{c}': use fixed_ips=ip_address=A or fixed_ips=subnet_id=S"
            )));
        };
        if !matches!(key, "ip_address" | "subnet_id" | "ip_address_substr") {
            return Err(ApiError::bad_request(format!(
                "[fixed_ips={key}] is invalid attribute for filtering"
            )));
        }
        match by_key.iter_mut().find(|(k, _)| *k == key) {
            Some((_, w)) => w.push(want),
            None => by_key.push((key, vec![want])),
        }
    }
    Ok(ips.iter().any(|ip| {
        by_key.iter().all(|(key, wants)| {
            let field = if *key == "ip_address_substr" {
                "ip_address"
            } else {
                key
            };
            let have = ip.get(field).and_then(Value::as_str).unwrap_or("");
            wants.iter().any(|w| {
                if *key == "ip_address_substr" {
                    have.contains(w)
                } else {
                    have == *w
                }
            })
        })
    }))
}

fn value_matches(attr: &Value, want: &str) -> bool {
    match attr {
        Value::Null => {
            want.is_empty()
                || want.eq_ignore_ascii_case("none")
                || want.eq_ignore_ascii_case("null")
        }
        Value::Bool(b) => match want.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == want,
        Value::String(s) => s == want,
        Value::Array(a) => a.iter().any(|x| value_matches(x, want)),
        Value::Object(_) => false,
    }
}

fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Object(_)) => 5,
    }
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (0..5)
            .map(|i| json!({"id": format!("id{i}"), "name": format!("n{}", 4 - i), "shared": i % 2 == 0, "tags": if i == 1 {json!(["a","b"])} else {json!([])}}))
            .collect()
    }

    #[test]
    fn filters_fields_sorting() {
        let p =
            ListParams::parse(Some("shared=True&fields=id&sort_key=name&sort_dir=asc")).unwrap();
        let out = p
            .respond("networks", items(), "http://h/v2.0/networks")
            .unwrap();
        assert_eq!(
            out,
            json!({"networks": [{"id": "id4"}, {"id": "id2"}, {"id": "id0"}]})
        );
        let p = ListParams::parse(Some("colour=red")).unwrap();
        assert!(p.respond("networks", items(), "u").is_err());
        let p = ListParams::parse(Some("tags=a,b&fields=id")).unwrap();
        assert_eq!(
            p.respond("n", items(), "u").unwrap(),
            json!({"n": [{"id": "id1"}]})
        );
        let p = ListParams::parse(Some("id=id1&id=id3&fields=id")).unwrap();
        assert_eq!(
            p.respond("n", items(), "u").unwrap(),
            json!({"n": [{"id": "id1"}, {"id": "id3"}]})
        );
    }

    #[test]
    fn pagination() {
        let p = ListParams::parse(Some("limit=2&fields=id")).unwrap();
        let out = p.respond("n", items(), "http://h/v2.0/n").unwrap();
        assert_eq!(out["n"], json!([{"id": "id0"}, {"id": "id1"}]));
        let next = out["n_links"][0]["href"].as_str().unwrap();
        assert!(
            next.contains("marker=id1") && next.contains("limit=2"),
            "{next}"
        );
        let p = ListParams::parse(Some("limit=2&marker=id3&fields=id")).unwrap();
        let out = p.respond("n", items(), "u").unwrap();
        assert_eq!(out["n"], json!([{"id": "id4"}]));
        assert_eq!(out["n_links"].as_array().unwrap().len(), 1);
        assert_eq!(out["n_links"][0]["rel"], "previous");
        let p = ListParams::parse(Some("limit=2&marker=nope")).unwrap();
        assert_eq!(p.respond("n", items(), "u").unwrap_err().status, 404);
        assert!(ListParams::parse(Some("limit=x")).is_err());
    }

    #[test]
    fn fixed_ip_filters() {
        let ports = vec![
            json!({"id": "a", "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.3"}]}),
            json!({"id": "b", "fixed_ips": [{"subnet_id": "s2", "ip_address": "10.0.1.3"}]}),
        ];
        let p = ListParams::parse(Some("fixed_ips=ip_address%3D10.0.1.3&fields=id")).unwrap();
        assert_eq!(
            p.respond("ports", ports.clone(), "u").unwrap(),
            json!({"ports": [{"id": "b"}]})
        );
        let p = ListParams::parse(Some("fixed_ips=subnet_id%3Ds1&fields=id")).unwrap();
        assert_eq!(
            p.respond("ports", ports, "u").unwrap(),
            json!({"ports": [{"id": "a"}]})
        );
    }
}
