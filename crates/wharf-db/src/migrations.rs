//! The schema, as numbered migrations applied in order at start.
//!
//! Each node applies what its database lacks, in one transaction holding an advisory lock,
//! so that nodes starting together apply each migration once and never see half a schema.
//! Migrations only add (tables, columns with defaults, triggers): a node of the previous
//! version keeps working against a newer schema while a rolling upgrade replaces it, so a
//! schema newer than this binary is logged, not refused.

use tokio_postgres::Client;

use crate::error::DbError;

/// The advisory lock key of migrations ("wharf" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x7768_6172_6600_0001;

/// Every migration, by number (the position plus one). Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[&str] = &[
    // 1: users, and a notification on the `wharf_users` channel for every change to them,
    // whoever makes it (a node, `wharf users import`, or SQL by hand). One notification per
    // statement (the trigger's argument names the channel); PostgreSQL folds identical ones
    // in a transaction.
    r#"
    CREATE FUNCTION wharf_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_ARGV[0], '');
        RETURN NULL;
    END
    $$;
    CREATE TABLE wharf_users (
        name text PRIMARY KEY,
        definition jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TRIGGER wharf_users_changed
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON wharf_users
        FOR EACH STATEMENT EXECUTE FUNCTION wharf_notify('wharf_users');
    "#,
    // 2: the defender's bans, shared: a ban decided on one node is written here, and every
    // node applies the bans it is told of on `wharf_bans`. Nodes only read in answer to a
    // notification (a statement trigger fires even when no row changed, so a write there
    // would notify again).
    r#"
    CREATE TABLE wharf_bans (
        address inet PRIMARY KEY,
        until timestamptz NOT NULL,
        score integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TRIGGER wharf_bans_changed
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON wharf_bans
        FOR EACH STATEMENT EXECUTE FUNCTION wharf_notify('wharf_bans');
    "#,
    // 3: session places counted across the cluster: each node beats its heart in
    // `wharf_nodes`, and each session holds a lease naming its node; the leases of a node
    // whose heart stopped no longer count, and are removed with the node.
    r#"
    CREATE TABLE wharf_nodes (
        node text PRIMARY KEY,
        heartbeat timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE wharf_leases (
        node text NOT NULL REFERENCES wharf_nodes ON DELETE CASCADE,
        id bigint NOT NULL,
        listener text NOT NULL,
        address inet NOT NULL,
        started timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (node, id)
    );
    CREATE INDEX wharf_leases_by_address ON wharf_leases (listener, address);
    "#,
    // 4: quota ledgers shared by the nodes: what each user's home uses, and what each node's
    // uploads in progress hold reserved (removed with the node, counted while it beats).
    r#"
    CREATE TABLE wharf_quota_usage (
        user_name text PRIMARY KEY,
        used_bytes bigint NOT NULL,
        used_files bigint NOT NULL,
        version bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE wharf_quota_holds (
        node text NOT NULL REFERENCES wharf_nodes ON DELETE CASCADE,
        user_name text NOT NULL,
        bytes bigint NOT NULL,
        files bigint NOT NULL,
        PRIMARY KEY (node, user_name)
    );
    CREATE INDEX wharf_quota_holds_by_user ON wharf_quota_holds (user_name);
    "#,
    // 5: the defender's scores added up over the nodes, one row per address and observation
    // window (rows of windows that are over are removed as scores are written).
    r#"
    CREATE TABLE wharf_scores (
        address inet PRIMARY KEY,
        score integer NOT NULL,
        window_start timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX wharf_scores_by_window ON wharf_scores (window_start);
    "#,
    // 6: sessions counted per user across the cluster (users with a `max_sessions`), as
    // leases of the nodes like those of migration 3.
    r#"
    CREATE TABLE wharf_user_leases (
        node text NOT NULL REFERENCES wharf_nodes ON DELETE CASCADE,
        id bigint NOT NULL,
        user_name text NOT NULL,
        started timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (node, id)
    );
    CREATE INDEX wharf_user_leases_by_user ON wharf_user_leases (user_name);
    "#,
    // 7: a lease taken in one round trip: the lock, the count and the insert in one call, so
    // the lock is held for the server's work only (each statement of a volatile function
    // sees what was committed before it, the count included what the lock waited for).
    // Returns 0 when the lease is taken, 1 when the total cap, 2 when the per-address cap
    // (a user's cap, for user leases) refuses it.
    r#"
    CREATE FUNCTION wharf_take_lease(
        p_node text, p_id bigint, p_listener text, p_address inet,
        p_total bigint, p_per_address bigint, p_timeout double precision
    ) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        total bigint;
        from_address bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_listener, 0));
        SELECT count(*), count(*) FILTER (WHERE l.address = p_address)
            INTO total, from_address
            FROM wharf_leases l JOIN wharf_nodes n ON n.node = l.node
            WHERE l.listener = p_listener
              AND n.heartbeat > now() - make_interval(secs => p_timeout);
        IF total >= p_total THEN RETURN 1; END IF;
        IF from_address >= p_per_address THEN RETURN 2; END IF;
        INSERT INTO wharf_leases (node, id, listener, address)
            VALUES (p_node, p_id, p_listener, p_address);
        RETURN 0;
    END $$;
    CREATE FUNCTION wharf_take_user_lease(
        p_node text, p_id bigint, p_user text, p_cap bigint, p_timeout double precision
    ) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        open_sessions bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('user:' || p_user, 0));
        SELECT count(*) INTO open_sessions
            FROM wharf_user_leases l JOIN wharf_nodes n ON n.node = l.node
            WHERE l.user_name = p_user
              AND n.heartbeat > now() - make_interval(secs => p_timeout);
        IF open_sessions >= p_cap THEN RETURN 2; END IF;
        INSERT INTO wharf_user_leases (node, id, user_name) VALUES (p_node, p_id, p_user);
        RETURN 0;
    END $$;
    "#,
];

/// The schema version this binary knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies the migrations `client`'s database lacks; returns how many it applied.
pub(crate) async fn apply(client: &mut Client) -> Result<usize, DbError> {
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS wharf_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let row =
        transaction.query_one("SELECT coalesce(max(version), 0) FROM wharf_schema", &[]).await?;
    let current: i32 = row.get(0);
    if current > SCHEMA_VERSION {
        tracing::warn!(
            database = current,
            known = SCHEMA_VERSION,
            "the database schema is newer than this node knows (a rolling upgrade in progress?); \
             serving with what it knows"
        );
    }
    let mut applied = 0;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        transaction.batch_execute(sql).await?;
        transaction.execute("INSERT INTO wharf_schema (version) VALUES ($1)", &[&version]).await?;
        tracing::info!(version, "database schema migrated");
        applied += 1;
    }
    transaction.commit().await?;
    Ok(applied)
}
