//! `crane keys create|list|revoke`: API keys, directly on the data dir (like `crane prompts`).
//! A created key is printed once; the store keeps only its hash. Every change is audited with
//! actor `local`.

use std::process::ExitCode;

use anyhow::Context;
use crane_core::access::{Role, check_tenant, generate_key};
use crane_core::store::{ApiKeyRow, AuditEntry};
use crane_settings::Settings;
use serde_json::json;

use super::USAGE;
use crate::cli::keys::{KeysArgs, KeysCommand};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(USAGE))
}

/// Runs `crane keys`.
pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Create {
            common,
            tenant,
            role,
            name,
            json,
        } => {
            let role: Role = match role.parse() {
                Ok(r) => r,
                Err(e) => return usage(e),
            };
            if let Err(e) = check_tenant(&tenant) {
                return usage(e);
            }
            let settings = Settings::load(&common.overrides())?;
            let store = super::open_store(&settings).await?;
            let generated = generate_key();
            let row = ApiKeyRow {
                key_id: generated.key_id.clone(),
                tenant: tenant.clone(),
                role,
                name,
                hash: generated.hash.clone(),
                created_at: now(),
                revoked_at: None,
            };
            store
                .insert_api_key(&row)
                .await
                .context("could not store the key")?;
            store
                .audit(AuditEntry {
                    tenant: tenant.clone(),
                    actor: "local".into(),
                    action: "key.created".into(),
                    target: row.key_id.clone(),
                    details: json!({"role": role, "name": row.name}),
                    at: row.created_at.clone(),
                })
                .await
                .context("could not audit the new key")?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    json!({"key_id": row.key_id, "key": generated.key, "tenant": tenant, "role": role})
                );
            } else {
                println!("key_id: {}", row.key_id);
                println!("tenant: {tenant}");
                println!("role:   {role}");
                println!("key:    {}", generated.key);
                eprintln!("Store the key now: it is shown only once (crane keeps only its hash).");
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List {
            common,
            tenant,
            json,
        } => {
            let settings = Settings::load(&common.overrides())?;
            let store = super::open_store(&settings).await?;
            let keys = store.list_api_keys(tenant.as_deref()).await?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "keys": keys }))?
                );
            } else if keys.is_empty() {
                println!("no keys; create one with `crane keys create --tenant T --role admin`");
            } else {
                println!(
                    "{:<16}  {:<16}  {:<8}  {:<24}  {:<24}  name",
                    "key_id", "tenant", "role", "created", "revoked"
                );
                for k in keys {
                    println!(
                        "{:<16}  {:<16}  {:<8}  {:<24}  {:<24}  {}",
                        k.key_id,
                        k.tenant,
                        k.role,
                        k.created_at,
                        k.revoked_at.as_deref().unwrap_or("-"),
                        k.name.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { common, key_id } => {
            let settings = Settings::load(&common.overrides())?;
            let store = super::open_store(&settings).await?;
            let at = now();
            let revoked = store.revoke_api_key(&key_id, None, &at).await?;
            let code = match revoked {
                Some(key) => {
                    store
                        .audit(AuditEntry {
                            tenant: key.tenant.clone(),
                            actor: "local".into(),
                            action: "key.revoked".into(),
                            target: key_id.clone(),
                            details: json!({}),
                            at,
                        })
                        .await?;
                    println!(
                        "revoked {key_id} (tenant {}, {}); it stops working within a second",
                        key.tenant, key.role
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: no key {key_id}; `crane keys list` shows the keys");
                    ExitCode::from(1)
                }
            };
            store.close().await;
            Ok(code)
        }
    }
}
