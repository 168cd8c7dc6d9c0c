//! The shared store suite against SQLite (a fresh data directory per test).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and their support modules may unwrap

mod common;
mod support;

use support::Db;

store_suite!(async { Some(Db::sqlite().await) });

#[tokio::test]
async fn sqlite_file_lives_in_the_data_dir_with_wal() {
    let db = Db::sqlite().await;
    let store = db.open().await;
    store
        .create_config(&common::alice(), "x", "")
        .await
        .unwrap();
    let dir = std::path::Path::new(&db.location);
    assert!(dir.join(opamp_store::SQLITE_FILE_NAME).exists());
    assert!(dir.join("opamp.db-wal").exists(), "WAL journal in use");
    store.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_opens_paths_with_spaces_and_sqlite_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my data #1");
    let store = opamp_store::open(dir.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    store
        .create_config(&common::alice(), "x", "")
        .await
        .unwrap();
    store.close().await.unwrap();
    let file = dir.join("opamp.db");
    let url = format!("sqlite:{}", file.display());
    let store = opamp_store::open(&url, Default::default()).await.unwrap();
    assert_eq!(store.get_config("x").await.unwrap().name, "x");
    assert_eq!(store.backend(), opamp_store::BackendKind::Sqlite);
}
