//! `mezhved paper register|answer`: the operator registers a request that arrived on paper
//! or by fax, and later its answer, through the running gateway's operator API (the
//! gateway assigns the global ID and computes the deadline, so there is one source of IDs).

use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PaperCommand {
    /// Register a paper/fax request from a JSON file (fields: docs/deadlines.md).
    Register {
        #[command(flatten)]
        api: ApiArgs,
        /// The request as JSON.
        #[arg(long)]
        file: PathBuf,
    },
    /// Register the answer to a paper/fax request.
    Answer {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        global_id: String,
        /// The answer as JSON.
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:7575")]
    pub url: String,
    /// The operator's bearer token.
    #[arg(long, env = "MEZHVED_OPERATOR_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Exit status 0 on success; an error names the gateway's problem detail.
pub fn paper(command: PaperCommand, out: &mut dyn Write) -> Result<(), String> {
    let (api, path, file) = match &command {
        PaperCommand::Register { api, file } => (api, "/api/v1/paper/requests".to_string(), file),
        PaperCommand::Answer {
            api,
            global_id,
            file,
        } => (
            api,
            format!("/api/v1/paper/requests/{}/answer", global_id.trim()),
            file,
        ),
    };
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let url = format!("{}{path}", api.url.trim_end_matches('/'));
    let runtime = crate::gateway_cmd::runtime()?;
    let (status, text) = runtime.block_on(async {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let request = hyper::Request::post(&url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", api.token),
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&text).into_owned()))
    })?;
    if status.is_success() {
        writeln!(out, "{text}").map_err(|e| e.to_string())
    } else {
        Err(format!("{url}: HTTP {status}: {text}"))
    }
}
