//! `supervisor healthcheck`: exit 0 when /health answers 200, 1 otherwise.
//! Docker runs it every few seconds (`HEALTHCHECK CMD ["supervisor",
//! "healthcheck"]`) in images that have no curl, so it does one request
//! and nothing else. Every failure, config trouble included, is exit 1.

use std::time::Duration;

use crate::health;
use crate::reach;
use crate::supervise::Outcome;

use super::Context;

pub async fn healthcheck(ctx: Context, url: Option<String>, timeout: Duration) -> Outcome {
    let url = match url {
        Some(url) => url,
        None => match listen_address(&ctx) {
            Ok(Some(listen)) => health::local_url(&listen),
            Ok(None) => return fail(&ctx, "the health server is off ([health].listen = \"off\"); pass --url"),
            Err(message) => return fail(&ctx, &message),
        },
    };
    match reach::http_get(&url, timeout, 64 * 1024).await {
        Ok((200, _)) => Outcome { code: 0 },
        // Why, in one line, from /health's own verdict: `starting: migrating`.
        Ok((code, body)) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(health) if health["status"].is_string() => {
                let status = health["status"].as_str().unwrap_or_default();
                match health["reason"].as_str() {
                    Some(reason) => fail(&ctx, &format!("{status}: {reason}")),
                    None => fail(&ctx, status),
                }
            }
            _ => fail(&ctx, &format!("{url} answered {code}")),
        },
        Err(err) => fail(&ctx, &format!("{url}: {err}")),
    }
}

/// `SUPERVISOR_HEALTH_LISTEN` > `[health].listen` > the default.
fn listen_address(ctx: &Context) -> Result<Option<String>, String> {
    let setting = ctx.settings.health_listen.as_ref();
    // With the setting, which wins anyway, the config is not even looked for.
    let section = if setting.is_some() {
        crate::config::HealthSection { listen: None }
    } else {
        match crate::config::locate(ctx.config_path().as_deref()) {
            Ok(source) => crate::config::load(source).map_err(|err| err.to_string())?.health,
            Err(_) => crate::config::HealthSection {
                listen: Some(crate::config::DEFAULT_HEALTH_LISTEN.to_string()),
            },
        }
    };
    Ok(crate::config::health_listen(setting, &section))
}

fn fail(ctx: &Context, message: &str) -> Outcome {
    ctx.output
        .stderr
        .write_now(format!("healthcheck: {message}\n").into_bytes());
    Outcome { code: 1 }
}
