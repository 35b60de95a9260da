//! The one dedicated connection of the migration phase, for either backend.
//!
//! Never a pool: a session advisory lock belongs to one server session, and
//! a pool (or a transaction-mode pooler) would strand it or share it. Every
//! SQL statement the phase needs lives here, once per backend.

use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection, Row};

use super::native::{Applied, Migration};
use super::tls;
use super::url::{Backend, DatabaseUrl};

pub const HISTORY_TABLE: &str = "_supervisor_migrations";
pub const STATE_TABLE: &str = "_supervisor_migrate_state";
/// Commands under the lock that started and have not been seen to end (see `lease`).
pub const LEASE_TABLE: &str = "_supervisor_lease";

/// Four ASCII bytes, "supv": the first half of our two-int4 Postgres key.
/// Single-bigint keys (Prisma's 72707369, sqlx, Flyway…) live in another key
/// space, so ours can never collide with a wrapped tool's own lock.
const LOCK_CLASS: i32 = i32::from_be_bytes(*b"supv");

/// What identifies the lock on each backend.
#[derive(Debug, Clone)]
pub struct LockKey {
    /// `[migrate].lock_name`, as configured.
    pub name: String,
    pub class: i32,
    pub object: i32,
    /// MySQL's GET_LOCK name: server-wide, so it includes the database.
    pub mysql_name: String,
}

impl LockKey {
    pub fn new(lock_name: &str, database: &str) -> LockKey {
        let digest = Sha256::digest(lock_name.as_bytes());
        let object = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let mut mysql_name = format!("supervisor:{database}:{lock_name}");
        if mysql_name.len() > 64 {
            let digest = Sha256::digest(format!("{database}\0{lock_name}").as_bytes());
            mysql_name = format!("supervisor:{}", &hex::encode(digest)[..40]);
        }
        LockKey {
            name: lock_name.to_string(),
            class: LOCK_CLASS,
            object,
            mysql_name,
        }
    }

    /// pg_locks shows the key as unsigned oids.
    fn oids(&self) -> (i64, i64) {
        (i64::from(self.class as u32), i64::from(self.object as u32))
    }
}

/// What `_supervisor_migrate_state` says of the migration command.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    pub fingerprint: String,
    pub applied_at: String,
    pub applied_by: String,
}

pub enum Db {
    Postgres { conn: PgConnection, pid: i32 },
    MySql { conn: MySqlConnection, id: i64 },
}

/// Whether an error is the connection's, not the statement's: worth a retry
/// when connecting (SPEC §4: the database not up yet), and a reason to start
/// the phase over when it happens mid-way (the server restarted; the open
/// transaction rolled back). Wrong passwords, missing databases and SQL
/// errors are final.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(mysql) = db.try_downcast_ref::<MySqlDatabaseError>() {
                // 1040 too many connections, 1053 shutdown in progress, 1927 connection killed.
                return matches!(mysql.number(), 1040 | 1053 | 1927 | 2006 | 2013);
            }
            // 57P01-03 admin/crash shutdown or starting up, 53300 too many connections.
            matches!(
                db.code().as_deref(),
                Some("57P01" | "57P02" | "57P03" | "53300" | "08006" | "08001" | "08003")
            )
        }
        _ => false,
    }
}

impl Db {
    pub async fn connect(url: &DatabaseUrl, application_name: &str, timeout: Duration) -> Result<Db, sqlx::Error> {
        let attempt = async {
            match url.backend {
                Backend::Postgres => {
                    let mut conn = pg_connect(url, application_name).await?;
                    // The simple protocol only, until we know that no pooler
                    // shares this session: its prepared statements would
                    // collide with another client's.
                    let pid = simple_i32(&mut conn, "SELECT pg_backend_pid()").await?;
                    prepare_postgres(&mut conn).await?;
                    Ok(Db::Postgres { conn, pid })
                }
                Backend::MySql => {
                    // GET_LOCK(…, 2) is slow on purpose: no slow-statement warnings.
                    let options = MySqlConnectOptions::from_str(url.raw())?.disable_statement_logging();
                    let mut conn = MySqlConnection::connect_with(&options).await?;
                    let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
                        .fetch_one(&mut conn)
                        .await?;
                    Ok(Db::MySql { conn, id })
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ))),
        }
    }

    /// The database name, for MySQL's server-wide lock name.
    pub async fn database_name(&mut self) -> Result<String, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => sqlx::query_scalar("SELECT current_database()").fetch_one(conn).await,
            Db::MySql { conn, .. } => Ok(sqlx::query_scalar::<_, Option<String>>("SELECT DATABASE()")
                .fetch_one(conn)
                .await?
                .unwrap_or_default()),
        }
    }

    /// A transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy…) gives a
    /// server session to whichever client runs the next transaction, so a
    /// session lock is worth nothing through it. The proof: a second client
    /// of ours, opened now, lands on the very session the first one just
    /// used (PgBouncer reuses idle server connections last-in first-out).
    /// Directly, or through a session-mode pooler, each client has a session
    /// of its own. Simple-protocol statements only.
    pub async fn shares_sessions(&mut self, url: &DatabaseUrl, application_name: &str) -> Result<bool, sqlx::Error> {
        let Db::Postgres { conn, pid } = self else {
            return Ok(false);
        };
        // A session-mode pool with no free server connection makes the probe
        // wait; a transaction pooler answers at once. Unknown after 5 s: go
        // on (a shared session still shows later, as a prepared-statement clash).
        let probe = async {
            let mut probe = pg_connect(url, application_name).await?;
            let probe_pid = simple_i32(&mut probe, "SELECT pg_backend_pid()").await?;
            let _ = probe.close().await;
            Ok::<i32, sqlx::Error>(probe_pid)
        };
        let probe_pid = match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(result) => Some(result?),
            Err(_) => None,
        };
        let now = simple_i32(conn, "SELECT pg_backend_pid()").await?;
        Ok(probe_pid == Some(*pid) || now != *pid)
    }

    /// The lock is ours already, or the session changed under us: something
    /// between us and the server shares or swaps sessions.
    pub async fn looks_pooled(&mut self, key: &LockKey) -> Result<bool, sqlx::Error> {
        match self {
            Db::Postgres { conn, pid } => {
                let now = simple_i32(conn, "SELECT pg_backend_pid()").await?;
                let (class, object) = key.oids();
                let already_ours: bool = sqlx::query_scalar(
                    "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 \
                     AND objid::bigint = $2 AND objsubid = 2 AND pid = pg_backend_pid()",
                )
                .bind(class)
                .bind(object)
                .fetch_one(&mut *conn)
                .await?;
                Ok(now != *pid || already_ours)
            }
            Db::MySql { .. } => Ok(false),
        }
    }

    pub async fn try_lock(&mut self, key: &LockKey) -> Result<bool, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => pg_lock_call(conn, "SELECT pg_try_advisory_lock($1, $2)", key).await,
            Db::MySql { conn, .. } => {
                // 1 acquired, 0 timed out (2 s, inside the server but only on
                // this name), NULL an error: never assume.
                let result: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 2)")
                    .bind(&key.mysql_name)
                    .fetch_one(conn)
                    .await?;
                match result {
                    Some(1) => Ok(true),
                    Some(_) => Ok(false),
                    None => Err(sqlx::Error::Protocol("GET_LOCK returned NULL".into())),
                }
            }
        }
    }

    /// Releases the lock; false when we did not hold it any more.
    pub async fn unlock(&mut self, key: &LockKey) -> Result<bool, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => pg_lock_call(conn, "SELECT pg_advisory_unlock($1, $2)", key).await,
            Db::MySql { conn, .. } => {
                let released: Option<i64> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
                    .bind(&key.mysql_name)
                    .fetch_one(conn)
                    .await?;
                Ok(released == Some(1))
            }
        }
    }

    /// The heartbeat: is the lock still granted to this very session?
    pub async fn holds_lock(&mut self, key: &LockKey) -> Result<bool, sqlx::Error> {
        match self {
            Db::Postgres { conn, pid } => {
                let (class, object) = key.oids();
                sqlx::query_scalar(
                    "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 \
                     AND objid::bigint = $2 AND objsubid = 2 AND granted AND pid = $3 AND pid = pg_backend_pid()",
                )
                .bind(class)
                .bind(object)
                .bind(*pid)
                .fetch_one(conn)
                .await
            }
            Db::MySql { conn, id } => {
                let holder: Option<i64> = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
                    .bind(&key.mysql_name)
                    .fetch_one(conn)
                    .await?;
                Ok(holder == Some(*id))
            }
        }
    }

    /// Connection slots left for ordinary clients (Postgres; None elsewhere).
    pub async fn free_connections(&mut self) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => sqlx::query_scalar(
                "SELECT current_setting('max_connections')::bigint - current_setting('superuser_reserved_connections')::bigint \
                 - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
            )
            .fetch_one(conn)
            .await
            .map(Some),
            Db::MySql { .. } => Ok(None),
        }
    }

    /// One heartbeat of the lease: is the lock still ours? Then a short wait
    /// *inside the server*, so that a query is in flight nearly all the time
    /// and the end of the session (terminated, server restarted) is seen the
    /// moment it happens, not at the next check.
    pub async fn beat(&mut self, key: &LockKey, pause: Duration) -> Result<bool, sqlx::Error> {
        if !self.holds_lock(key).await? {
            return Ok(false);
        }
        match self {
            Db::Postgres { conn, .. } => sqlx::query("SELECT pg_sleep($1)")
                .bind(pause.as_secs_f64())
                .execute(conn)
                .await
                .map(drop)?,
            Db::MySql { conn, .. } => sqlx::query("SELECT SLEEP(?)")
                .bind(pause.as_secs_f64())
                .execute(conn)
                .await
                .map(drop)?,
        }
        Ok(true)
    }

    /// Records that `what` starts under the lock named `lock_name`.
    pub async fn mark_unfinished(&mut self, lock_name: &str, holder: &str, what: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => {
                sqlx::query(&format!(
                    "INSERT INTO {LEASE_TABLE} (lock_name, holder, what) VALUES ($1, $2, $3) \
                     ON CONFLICT (lock_name) DO UPDATE SET holder = EXCLUDED.holder, what = EXCLUDED.what, since = now()"
                ))
                .bind(lock_name)
                .bind(holder)
                .bind(what)
                .execute(conn)
                .await?;
            }
            Db::MySql { conn, .. } => {
                sqlx::query(&format!(
                    "INSERT INTO {LEASE_TABLE} (lock_name, holder, what) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE holder = VALUES(holder), what = VALUES(what), since = CURRENT_TIMESTAMP(6)"
                ))
                .bind(lock_name)
                .bind(holder)
                .bind(what)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    /// The record of a command that started under this lock and was not seen
    /// to end: "the migration command of supervisor@web-1, started 2026-… UTC".
    pub async fn unfinished(&mut self, lock_name: &str) -> Result<Option<String>, sqlx::Error> {
        let row = match self {
            Db::Postgres { conn, .. } => sqlx::query(&format!(
                "SELECT holder, what, to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                     FROM {LEASE_TABLE} WHERE lock_name = $1"
            ))
            .bind(lock_name)
            .fetch_optional(conn)
            .await?
            .map(|row| (row.get(0), row.get(1), row.get(2))),
            Db::MySql { conn, .. } => sqlx::query(&format!(
                "SELECT holder, what, DATE_FORMAT(since, '%Y-%m-%d %H:%i:%S') FROM {LEASE_TABLE} WHERE lock_name = ?"
            ))
            .bind(lock_name)
            .fetch_optional(conn)
            .await?
            .map(|row| (row.get(0), row.get(1), row.get(2))),
        };
        Ok(row
            .map(|(holder, what, since): (String, String, String)| format!("{what} of {holder}, started {since} UTC")))
    }

    /// The command's group is empty: nothing of it runs any more.
    pub async fn clear_unfinished(&mut self, lock_name: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => {
                sqlx::query(&format!("DELETE FROM {LEASE_TABLE} WHERE lock_name = $1"))
                    .bind(lock_name)
                    .execute(conn)
                    .await?;
            }
            Db::MySql { conn, .. } => {
                sqlx::query(&format!("DELETE FROM {LEASE_TABLE} WHERE lock_name = ?"))
                    .bind(lock_name)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Who holds the lock: "pid 4123 (supervisor@web-1, 10.0.3.4, state active, connected 12s ago, query …)".
    pub async fn holder(&mut self, key: &LockKey) -> Result<Option<String>, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => {
                let (class, object) = key.oids();
                let row = sqlx::query(
                    "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), \
                     coalesce(a.state, ''), coalesce(extract(epoch from now() - a.backend_start)::bigint, 0), \
                     coalesce(left(a.query, 120), '') \
                     FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
                     AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .bind(class)
                .bind(object)
                .fetch_optional(conn)
                .await?;
                Ok(row.map(|row| {
                    let (pid, app, client, state, age, query): (i32, String, String, String, i64, String) =
                        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
                    format!("pid {pid} ({app}, {client}, state {state}, connected {age}s ago, query {query:?})")
                }))
            }
            Db::MySql { conn, .. } => {
                let holder: Option<i64> = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
                    .bind(&key.mysql_name)
                    .fetch_one(&mut *conn)
                    .await?;
                let Some(id) = holder else { return Ok(None) };
                let row = sqlx::query(
                    "SELECT COALESCE(USER, ''), COALESCE(HOST, ''), COALESCE(TIME, 0), COALESCE(STATE, ''), \
                     COALESCE(LEFT(INFO, 120), '') FROM information_schema.PROCESSLIST WHERE ID = ?",
                )
                .bind(id)
                .fetch_optional(conn)
                .await?;
                Ok(Some(match row {
                    Some(row) => {
                        let (user, host, time, state, info): (String, String, i64, String, String) =
                            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
                        format!("connection {id} ({user}@{host}, {time}s in state {state:?}, query {info:?})")
                    }
                    None => format!("connection {id}"),
                }))
            }
        }
    }

    pub async fn ensure_tables(&mut self) -> Result<(), sqlx::Error> {
        let statements: [String; 3] = match self {
            Db::Postgres { .. } => [
                format!(
                    "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                     checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), duration BIGINT NOT NULL, \
                     applied_by TEXT NOT NULL)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, \
                     command TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), duration BIGINT NOT NULL, \
                     applied_by TEXT NOT NULL)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (lock_name TEXT PRIMARY KEY, holder TEXT NOT NULL, \
                     what TEXT NOT NULL, since TIMESTAMPTZ NOT NULL DEFAULT now())"
                ),
            ],
            Db::MySql { .. } => [
                format!(
                    "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (version BIGINT PRIMARY KEY, name VARCHAR(255) NOT NULL, \
                     checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
                     duration BIGINT NOT NULL, applied_by VARCHAR(255) NOT NULL)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (`key` VARCHAR(191) PRIMARY KEY, fingerprint VARCHAR(64) NOT NULL, \
                     command TEXT NOT NULL, applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
                     duration BIGINT NOT NULL, applied_by VARCHAR(255) NOT NULL)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (lock_name VARCHAR(191) PRIMARY KEY, holder VARCHAR(255) NOT NULL, \
                     what VARCHAR(255) NOT NULL, since TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
                ),
            ],
        };
        for statement in statements {
            self.execute(&statement).await?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => sqlx::raw_sql(sql).execute(conn).await.map(drop),
            Db::MySql { conn, .. } => sqlx::raw_sql(sql).execute(conn).await.map(drop),
        }
    }

    /// The recorded history, oldest first; empty before the table exists.
    pub async fn applied(&mut self) -> Result<Vec<Applied>, sqlx::Error> {
        match self {
            Db::Postgres { conn, .. } => {
                let sql = format!(
                    "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                     FROM {HISTORY_TABLE} ORDER BY version"
                );
                history(sqlx::query(&sql).fetch_all(conn).await)
            }
            Db::MySql { conn, .. } => {
                let sql = format!(
                    "SELECT version, name, checksum, DATE_FORMAT(applied_at, '%Y-%m-%dT%H:%i:%S') FROM {HISTORY_TABLE} ORDER BY version"
                );
                history(sqlx::query(&sql).fetch_all(conn).await)
            }
        }
    }

    /// Applies one migration and records it; both or neither, unless the
    /// file opted out of the transaction. (On MySQL, DDL commits implicitly:
    /// only DML is atomic with its history row.)
    pub async fn apply(&mut self, migration: &Migration, applied_by: &str) -> Result<Duration, sqlx::Error> {
        let started = std::time::Instant::now();
        // The same statements on either backend; only the placeholders differ.
        macro_rules! apply_on {
            ($conn:expr, $insert:expr) => {{
                let insert = format!(
                    "INSERT INTO {HISTORY_TABLE} (version, name, checksum, duration, applied_by) VALUES {}",
                    $insert
                );
                let record = |took: Duration| {
                    sqlx::query(&insert)
                        .bind(migration.version)
                        .bind(&migration.name)
                        .bind(&migration.checksum)
                        .bind(took.as_millis() as i64)
                        .bind(applied_by)
                };
                if migration.no_transaction {
                    sqlx::raw_sql(&migration.sql).execute(&mut *$conn).await?;
                    record(started.elapsed()).execute(&mut *$conn).await?;
                } else {
                    let mut tx = $conn.begin().await?;
                    sqlx::raw_sql(&migration.sql).execute(&mut *tx).await?;
                    record(started.elapsed()).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
            }};
        }
        match self {
            Db::Postgres { conn, .. } => apply_on!(conn, "($1, $2, $3, $4, $5)"),
            Db::MySql { conn, .. } => apply_on!(conn, "(?, ?, ?, ?, ?)"),
        }
        Ok(started.elapsed())
    }

    pub async fn fingerprint(&mut self, key: &str) -> Result<Option<String>, sqlx::Error> {
        let result = match self {
            Db::Postgres { conn, .. } => {
                sqlx::query_scalar(&format!("SELECT fingerprint FROM {STATE_TABLE} WHERE key = $1"))
                    .bind(key)
                    .fetch_optional(conn)
                    .await
            }
            Db::MySql { conn, .. } => {
                sqlx::query_scalar(&format!("SELECT fingerprint FROM {STATE_TABLE} WHERE `key` = ?"))
                    .bind(key)
                    .fetch_optional(conn)
                    .await
            }
        };
        match result {
            Err(err) if is_missing_table(&err) => Ok(None),
            other => other,
        }
    }

    /// The last successful run of the migration command, as recorded.
    pub async fn command_record(&mut self, key: &str) -> Result<Option<CommandRecord>, sqlx::Error> {
        let row = match self {
            Db::Postgres { conn, .. } => sqlx::query(&format!(
                "SELECT fingerprint, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), applied_by \
                 FROM {STATE_TABLE} WHERE key = $1"
            ))
            .bind(key)
            .fetch_optional(conn)
            .await
            .map(|row| row.map(|r| (r.get(0), r.get(1), r.get(2)))),
            Db::MySql { conn, .. } => sqlx::query(&format!(
                "SELECT fingerprint, DATE_FORMAT(applied_at, '%Y-%m-%dT%H:%i:%SZ'), applied_by FROM {STATE_TABLE} WHERE `key` = ?"
            ))
            .bind(key)
            .fetch_optional(conn)
            .await
            .map(|row| row.map(|r| (r.get(0), r.get(1), r.get(2)))),
        };
        match row {
            Ok(row) => Ok(row.map(|(fingerprint, applied_at, applied_by)| CommandRecord {
                fingerprint,
                applied_at,
                applied_by,
            })),
            Err(err) if is_missing_table(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn record_fingerprint(
        &mut self,
        key: &str,
        fingerprint: &str,
        command: &str,
        took: Duration,
        applied_by: &str,
    ) -> Result<(), sqlx::Error> {
        let millis = took.as_millis() as i64;
        match self {
            Db::Postgres { conn, .. } => {
                sqlx::query(&format!(
                    "INSERT INTO {STATE_TABLE} (key, fingerprint, command, duration, applied_by) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, command = EXCLUDED.command, \
                     applied_at = now(), duration = EXCLUDED.duration, applied_by = EXCLUDED.applied_by"
                ))
                .bind(key)
                .bind(fingerprint)
                .bind(command)
                .bind(millis)
                .bind(applied_by)
                .execute(conn)
                .await?;
            }
            Db::MySql { conn, .. } => {
                sqlx::query(&format!(
                    "INSERT INTO {STATE_TABLE} (`key`, fingerprint, command, duration, applied_by) VALUES (?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE fingerprint = VALUES(fingerprint), command = VALUES(command), \
                     applied_at = CURRENT_TIMESTAMP(6), duration = VALUES(duration), applied_by = VALUES(applied_by)"
                ))
                .bind(key)
                .bind(fingerprint)
                .bind(command)
                .bind(millis)
                .bind(applied_by)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn close(self) {
        let _ = match self {
            Db::Postgres { conn, .. } => conn.close().await,
            Db::MySql { conn, .. } => conn.close().await,
        };
    }
}

/// The lock session must not be cut by the server's own timeouts, must have
/// the server drop it when we go silent only *after* our lease has run out
/// (keepalives: 5 s + 5 × 2 s; unacknowledged data: 15 s; both longer than
/// `lease::LEASE`), and must make the lease record durable before the lock
/// can pass on (SPEC §4).
async fn prepare_postgres(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let version = simple_i32(conn, "SELECT current_setting('server_version_num')::int").await?;
    let mut settings = vec![
        "SET statement_timeout = 0",
        "SET lock_timeout = 0",
        "SET idle_in_transaction_session_timeout = 0",
        "SET synchronous_commit = on",
        "SET tcp_keepalives_idle = 5",
        "SET tcp_keepalives_interval = 2",
        "SET tcp_keepalives_count = 5",
        // `CREATE TABLE IF NOT EXISTS` notices on every replica are noise.
        "SET client_min_messages = warning",
    ];
    if version >= 120000 {
        settings.push("SET tcp_user_timeout = 15000");
    }
    if version >= 140000 {
        // Without it a SIGKILLed holder keeps the lock until its statement ends.
        settings.push("SET idle_session_timeout = 0");
        settings.push("SET client_connection_check_interval = '2s'");
    }
    // One round trip: waiters reconnect for every try.
    let script = settings.join("; ");
    sqlx::raw_sql(&script).execute(&mut *conn).await?;
    Ok(())
}

fn is_missing_table(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            if let Some(mysql) = db.try_downcast_ref::<MySqlDatabaseError>() {
                return mysql.number() == 1146;
            }
            db.code().as_deref() == Some("42P01")
        }
        _ => false,
    }
}
/// History rows as read by either backend; no table yet means nothing applied.
fn history<R: Row>(rows: Result<Vec<R>, sqlx::Error>) -> Result<Vec<Applied>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    match rows {
        Ok(rows) => Ok(rows
            .iter()
            .map(|r| Applied {
                version: r.get(0),
                name: r.get(1),
                checksum: r.get(2),
                applied_at: r.get(3),
            })
            .collect()),
        Err(err) if is_missing_table(&err) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// A Postgres connection, with TLS as libpq would make it (`tls`).
async fn pg_connect(url: &DatabaseUrl, application_name: &str) -> Result<PgConnection, sqlx::Error> {
    // No `extra_float_digits` startup parameter: a stock PgBouncer refuses
    // the connection over it, and the lock session never formats a float.
    let options = PgConnectOptions::from_str(url.raw())?
        .application_name(application_name)
        .extra_float_digits(None)
        .disable_statement_logging();
    let settings = tls::Settings::read(options.get_ssl_mode(), url);
    let plan = match options.get_socket() {
        // libpq never uses TLS over a Unix socket.
        Some(_) => tls::Plan::Sqlx,
        None => settings.plan().map_err(|err| sqlx::Error::Tls(Box::new(err)))?,
    };
    match plan {
        tls::Plan::Sqlx => PgConnection::connect_with(&options).await,
        tls::Plan::PlainThenTls => {
            match PgConnection::connect_with(&options.clone().ssl_mode(PgSslMode::Disable)).await {
                Err(err) if refuses_plain(&err) => {
                    PgConnection::connect_with(&options.ssl_mode(PgSslMode::Require)).await
                }
                other => other,
            }
        }
        tls::Plan::Verified(config) => {
            let port = tls::bridge(options.get_host(), options.get_port(), config, &settings).await?;
            PgConnection::connect_with(&options.host("127.0.0.1").port(port).ssl_mode(PgSslMode::Disable)).await
        }
    }
}

/// The server turns unencrypted clients away (`hostssl` only): `allow` then tries TLS.
fn refuses_plain(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("28000")
        && (db.message().contains("no encryption") || db.message().contains("SSL off")))
}

/// One integer, over the simple query protocol (no prepared statement).
async fn simple_i32(conn: &mut PgConnection, sql: &'static str) -> Result<i32, sqlx::Error> {
    sqlx::raw_sql(sql).fetch_one(conn).await?.try_get(0)
}

/// A prepared statement that exists, or does not, when it must not or must:
/// our statements met another client's in a shared server session.
pub fn is_pooled_session(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P05" | "26000")))
}

/// `SELECT f($1, $2)` of a Postgres advisory-lock function on our two-int4 key.
async fn pg_lock_call(conn: &mut PgConnection, sql: &'static str, key: &LockKey) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(sql)
        .bind(key.class)
        .bind(key.object)
        .fetch_one(conn)
        .await
}
