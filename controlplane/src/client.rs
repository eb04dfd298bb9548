//! A small client of the controller's IPAM read-outs, for `weft ipam utilization` and
//! `weft ipam history` (HTTP, like any other client: the CLI never opens the database).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request failed.
    #[error("request to {0} failed: {1}")]
    Http(String, reqwest::Error),
    /// The controller answered with an error.
    #[error("{0}: {1}")]
    Api(u16, String),
    /// The answer is not what the API documents.
    #[error("unexpected answer from the controller: {0}")]
    Unexpected(String),
    /// No runtime.
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
}

fn get(url: &str, token: Option<&str>) -> Result<Value, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Http(url.to_owned(), e))?;
        let mut req = client.get(url).header("Accept", "application/json");
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Http(url.to_owned(), e))?;
        let status = resp.status().as_u16();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Http(url.to_owned(), e))?;
        if status >= 400 {
            let msg = body["NeutronError"]["message"]
                .as_str()
                .unwrap_or("error")
                .to_owned();
            return Err(ClientError::Api(status, msg));
        }
        Ok(body)
    })
}

/// A table of per-subnet utilization (`weft ipam utilization`), or the JSON.
pub fn utilization(
    url: &str,
    token: Option<&str>,
    network: Option<&str>,
    json: bool,
) -> Result<String, ClientError> {
    let base = url.trim_end_matches('/');
    let body = match network {
        Some(n) => {
            let v = get(&format!("{base}/v2.0/network-ip-availabilities/{n}"), token)?;
            serde_json::json!({"network_ip_availabilities": [v["network_ip_availability"].clone()]})
        }
        None => get(&format!("{base}/v2.0/network-ip-availabilities"), token)?,
    };
    if json {
        return serde_json::to_string_pretty(&body)
            .map_err(|e| ClientError::Unexpected(e.to_string()));
    }
    let nets = body["network_ip_availabilities"]
        .as_array()
        .ok_or_else(|| ClientError::Unexpected("no network_ip_availabilities".into()))?;
    let mut out = format!(
        "{:<38} {:<20} {:<24} {:>12} {:>12} {:>7}\n",
        "subnet", "network", "cidr", "used", "total", "used%"
    );
    for n in nets {
        for s in n["subnet_ip_availability"].as_array().into_iter().flatten() {
            let used = s["used_ips"].as_u64().unwrap_or(0);
            let total = s["total_ips"].as_u64().unwrap_or(0);
            let pct = if total == 0 {
                0.0
            } else {
                100.0 * used as f64 / total as f64
            };
            let _ = writeln!(
                out,
                "{:<38} {:<20} {:<24} {:>12} {:>12} {:>6.1}%",
                s["subnet_id"].as_str().unwrap_or(""),
                n["network_name"].as_str().unwrap_or(""),
                s["cidr"].as_str().unwrap_or(""),
                used,
                total,
                pct
            );
        }
    }
    Ok(out)
}

/// The allocation history (`weft ipam history`), newest first, as a table or JSON.
pub fn history(
    url: &str,
    token: Option<&str>,
    subnet: Option<&str>,
    port: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<String, ClientError> {
    let base = url.trim_end_matches('/');
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = subnet {
        q.append_pair("subnet_id", s);
    }
    if let Some(p) = port {
        q.append_pair("port_id", p);
    }
    q.append_pair("limit", &limit.to_string());
    let body = get(
        &format!("{base}/v2.0/weft/ip-allocation-history?{}", q.finish()),
        token,
    )?;
    if json {
        return serde_json::to_string_pretty(&body)
            .map_err(|e| ClientError::Unexpected(e.to_string()));
    }
    let events = body["ip_allocation_history"]
        .as_array()
        .ok_or_else(|| ClientError::Unexpected("no ip_allocation_history".into()))?;
    let mut out = format!(
        "{:<20} {:<8} {:<39} {:<36} {:<16} {}\n",
        "when", "action", "address", "port", "project", "request"
    );
    for e in events {
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:<39} {:<36} {:<16} {}",
            e["at"].as_str().unwrap_or(""),
            e["action"].as_str().unwrap_or(""),
            e["ip_address"].as_str().unwrap_or(""),
            e["port_id"].as_str().unwrap_or(""),
            e["project_id"].as_str().unwrap_or(""),
            e["request_id"].as_str().unwrap_or("")
        );
    }
    Ok(out)
}
