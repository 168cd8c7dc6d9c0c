//! `opampd token create|list|revoke`: admin API tokens, straight in the store (works while
//! the server runs: SQLite in WAL mode allows a second process, PostgreSQL anyway).

use anyhow::Context as _;
use opamp_store::{Actor, NewToken, Role, StoreOptions, generate_secret};

use crate::settings::{Settings, TokenCommand};

pub(crate) async fn run(settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = opamp_store::open(&settings.store_location(), StoreOptions::default())
        .await
        .with_context(|| format!("cannot open the store ({})", settings.store_display()))?;
    let actor = Actor::system("cli");
    let result = match cmd {
        TokenCommand::Create { role, name } => {
            let role: Role = role
                .parse()
                .map_err(|_| anyhow::anyhow!("--role must be admin, operator or viewer"))?;
            let (secret, hash) = generate_secret();
            let t = store
                .create_token(&actor, NewToken { name, role, hash })
                .await?;
            eprintln!(
                "created token {} (id {}, role {}); the secret below is shown only now:",
                t.name, t.id, t.role
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => {
            let tokens = store.list_tokens().await?;
            println!(
                "{:<6} {:<24} {:<9} {:<26} {:<26}",
                "ID", "NAME", "ROLE", "CREATED", "REVOKED"
            );
            for t in tokens {
                println!(
                    "{:<6} {:<24} {:<9} {:<26} {:<26}",
                    t.id,
                    t.name,
                    t.role,
                    t.created_at,
                    t.revoked_at.map_or("-".to_owned(), |r| r.to_string())
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { token } => {
            let tokens = store.list_tokens().await?;
            let found = tokens
                .iter()
                .find(|t| t.id.to_string() == token || (t.name == token && t.revoked_at.is_none()))
                .with_context(|| {
                    format!("no token with id or name {token:?} (see `opampd token list`)")
                })?;
            let t = store.revoke_token(&actor, found.id).await?;
            println!("revoked token {} (id {})", t.name, t.id);
            Ok(())
        }
    };
    store.close().await?;
    result
}
