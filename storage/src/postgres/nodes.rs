//! Snowflake id-pair leases on PostgreSQL (`id_leases`, one row per claimed pair), and guild
//! ownership (`guild_owners`, one row per guild ever claimed), which lives as long as the
//! owner's id lease does.
//!
//! Expiry is on the database's clock: a lease is live while `expires_at > now()`, and a grant
//! or renewal sets `expires_at = now() + ttl`. `now()` is the start of the transaction, which
//! is after the caller sent it, so a node that counts its lease from the moment it sent the
//! request never believes it holds a pair longer than the database does.
//!
//! Claims are rare (a node's start-up) and must be atomic over the whole table (two open
//! claims must not pick the same free pair), so each runs in a transaction that first takes a
//! transaction-scoped advisory lock: claims run one at a time. Renewals and releases touch only
//! the holder's row, in one conditional `UPDATE` each; a claim locks the row it looks at, so
//! it waits for a renewal in flight and sees its outcome.
//!
//! A guild claim runs in one transaction: it share-locks the claimer's own lease row (so that
//! lease cannot be taken from under the claim), inserts the guild's record if there is none,
//! and otherwise locks the record and takes it over only if its owner's lease is gone. Two
//! claims of a new guild meet on the primary key: the second waits for the first to commit and
//! then finds its record.

use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use tokio_postgres::Row;

use super::{Db, PostgresStore, col, db_error, timestamp};
use enrichment_protocol::Snowflake;

use crate::{
    GuildClaim, GuildOwner, IdClaim, IdLease, IdPair, LeaseStore, NodeStore, StoreError,
    StoreResult, pair_index,
};

/// The advisory lock key that serializes claims ("enrlease" in ASCII).
const CLAIM_LOCK: i64 = 0x656e_726c_6561_7365;

/// The holder and expiry of one pair, and whether the lease is live, with its row locked.
const CURRENT: &str = "SELECT node_id, generation, expires_at, expires_at > now()
    FROM id_leases WHERE pair = $1 FOR UPDATE";

/// The lowest pair that was never claimed.
const NEVER_CLAIMED: &str = "SELECT p::smallint FROM generate_series(0, 1023) AS p
    WHERE NOT EXISTS (SELECT 1 FROM id_leases WHERE pair = p) ORDER BY p LIMIT 1";

/// The pair free the longest.
const LONGEST_FREE: &str = "SELECT pair FROM id_leases WHERE expires_at <= now()
    ORDER BY expires_at, pair LIMIT 1 FOR UPDATE";

/// Grants $1 to ($2, $3) for $4 milliseconds.
const GRANT: &str = "INSERT INTO id_leases (pair, node_id, generation, expires_at)
    VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
    ON CONFLICT (pair) DO UPDATE SET node_id = excluded.node_id,
        generation = excluded.generation, expires_at = excluded.expires_at
    RETURNING expires_at";

const RENEW: &str =
    "UPDATE id_leases SET expires_at = now() + $4::bigint * interval '1 millisecond'
    WHERE pair = $1 AND node_id = $2 AND generation = $3 AND expires_at > now()
    RETURNING expires_at";

const RELEASE: &str = "UPDATE id_leases SET expires_at = now()
    WHERE pair = $1 AND node_id = $2 AND generation = $3 AND expires_at > now()";

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn sql_pair(pair: IdPair) -> StoreResult<i16> {
    Ok(pair_index(pair)? as i16)
}

fn generation(node: &NodeIdentity) -> i64 {
    node.generation.0 as i64
}

fn lease(pair: IdPair, holder: NodeIdentity, row: &Row, at: usize) -> StoreResult<IdLease> {
    Ok(IdLease {
        pair,
        holder,
        expires_at: timestamp(col(row, at)?),
    })
}

#[async_trait]
impl NodeStore for PostgresStore {
    async fn claim_id_pair(
        &self,
        node: &NodeIdentity,
        wanted: Option<IdPair>,
        ttl: Duration,
    ) -> StoreResult<IdClaim> {
        let context = "claiming a snowflake id pair";
        let wanted = wanted.map(sql_pair).transpose()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        db.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK], context)
            .await?;
        let pair = match wanted {
            Some(pair) => {
                if let Some(row) = db.query_opt(CURRENT, &[&pair], context).await? {
                    let holder = NodeIdentity::new(
                        col::<String>(&row, 0)?,
                        GenerationId(col::<i64>(&row, 1)? as u64),
                    );
                    if col::<bool>(&row, 3)? && holder != *node {
                        let pair = index_pair(pair)?;
                        return Ok(IdClaim::Held(lease(pair, holder, &row, 2)?));
                    }
                }
                pair
            }
            None => {
                let never = db.query_opt(NEVER_CLAIMED, &[], context).await?;
                let free = match never {
                    Some(row) => Some(row),
                    None => db.query_opt(LONGEST_FREE, &[], context).await?,
                };
                match free {
                    Some(row) => col::<i16>(&row, 0)?,
                    None => return Ok(IdClaim::Exhausted),
                }
            }
        };
        let row = db
            .query_opt(
                GRANT,
                &[&pair, &node.node_id, &generation(node), &ttl_ms(ttl)],
                context,
            )
            .await?
            .ok_or_else(|| StoreError::Backend("granting an id lease returned nothing".into()))?;
        let granted = lease(index_pair(pair)?, node.clone(), &row, 0)?;
        tx.commit().await.map_err(db_error(context))?;
        Ok(IdClaim::Claimed(granted))
    }

    async fn renew_id_pair(
        &self,
        node: &NodeIdentity,
        pair: IdPair,
        ttl: Duration,
    ) -> StoreResult<Option<IdLease>> {
        let index = sql_pair(pair)?;
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                RENEW,
                &[&index, &node.node_id, &generation(node), &ttl_ms(ttl)],
                "renewing a snowflake id lease",
            )
            .await?;
        row.map(|r| lease(pair, node.clone(), &r, 0)).transpose()
    }

    async fn release_id_pair(&self, node: &NodeIdentity, pair: IdPair) -> StoreResult<bool> {
        let index = sql_pair(pair)?;
        let client = self.client().await?;
        let released = Db::Conn(&client)
            .execute(
                RELEASE,
                &[&index, &node.node_id, &generation(node)],
                "releasing a snowflake id lease",
            )
            .await?;
        Ok(released > 0)
    }
}

fn index_pair(index: i16) -> StoreResult<IdPair> {
    u16::try_from(index)
        .ok()
        .and_then(IdPair::from_index)
        .ok_or_else(|| StoreError::Corrupt(format!("id lease pair {index}")))
}

/// The claimer's own lease, share-locked for the rest of the transaction.
const CLAIMER_LEASE: &str = "SELECT 1 FROM id_leases
    WHERE pair = $1 AND node_id = $2 AND generation = $3 AND expires_at > now() FOR SHARE";

const FIRST_CLAIM: &str = "INSERT INTO guild_owners (guild_id, node_id, generation, pair, epoch)
    VALUES ($1, $2, $3, $4, 1) ON CONFLICT (guild_id) DO NOTHING";

/// Whether the ownership record `o`, joined with its pair's lease `l`, is live: not released,
/// and its node (that generation) still holds the pair. The one definition every statement
/// that asks uses.
macro_rules! live_owner {
    () => {
        "NOT o.released AND l.node_id = o.node_id AND l.generation = o.generation \
         AND l.expires_at > now()"
    };
}
pub(super) use live_owner;

/// A record with whether it is live.
const OWNER: &str = concat!(
    "SELECT o.node_id, o.generation, o.pair, o.epoch, ",
    live_owner!(),
    " FROM guild_owners o LEFT JOIN id_leases l ON l.pair = o.pair WHERE o.guild_id = $1"
);

const TAKE_OVER: &str = "UPDATE guild_owners SET node_id = $2, generation = $3, pair = $4,
        epoch = epoch + 1, released = false
    WHERE guild_id = $1 RETURNING epoch";

const RELEASE_GUILD: &str = "UPDATE guild_owners SET released = true
    WHERE guild_id = $1 AND node_id = $2 AND generation = $3 AND epoch = $4 AND NOT released";

const OWNED_BY: &str = concat!(
    "SELECT o.guild_id, o.pair, o.epoch FROM guild_owners o JOIN id_leases l ON l.pair = o.pair
    WHERE o.node_id = $1 AND o.generation = $2 AND ",
    live_owner!(),
    " ORDER BY o.guild_id"
);

/// `fence` as the guild's live record, share-locked for the rest of the transaction: a claim
/// or release (which lock it for update) waits until the transaction ends.
const FENCE: &str = concat!(
    "SELECT 1 FROM guild_owners o JOIN id_leases l ON l.pair = o.pair
    WHERE o.guild_id = $1 AND o.node_id = $2 AND o.generation = $3 AND o.epoch = $4 AND ",
    live_owner!(),
    " FOR SHARE OF o"
);

/// Refuses the transaction's writes unless `fence` (when there is one) is the guild's live
/// ownership record; the record stays share-locked until the transaction ends.
pub(super) async fn check_fence(db: &Db<'_>, fence: Option<&GuildOwner>) -> StoreResult<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let live = db
        .query_opt(
            FENCE,
            &[
                &guild_sql(fence.guild_id),
                &fence.node.node_id,
                &generation(&fence.node),
                &(fence.epoch as i64),
            ],
            "checking a guild's ownership",
        )
        .await?;
    match live {
        Some(_) => Ok(()),
        None => Err(crate::fence::deposed(fence)),
    }
}

fn guild_sql(id: Snowflake) -> i64 {
    id.get() as i64
}

/// A [`GuildOwner`] from an [`OWNER`] row, and whether it is live.
fn owner_row(guild_id: Snowflake, row: &Row) -> StoreResult<(GuildOwner, bool)> {
    let owner = GuildOwner {
        guild_id,
        node: NodeIdentity::new(
            col::<String>(row, 0)?,
            GenerationId(col::<i64>(row, 1)? as u64),
        ),
        pair: index_pair(col::<i16>(row, 2)?)?,
        epoch: col::<i64>(row, 3)? as u64,
    };
    // A LEFT JOIN without a lease row yields NULL: not live.
    let live = col::<Option<bool>>(row, 4)?.unwrap_or(false);
    Ok((owner, live))
}

#[async_trait]
impl LeaseStore for PostgresStore {
    fn fenced(self: std::sync::Arc<Self>, owner: GuildOwner) -> crate::FencedStores {
        crate::fence::Fenced::stores(self, owner)
    }

    async fn claim_guild(
        &self,
        guild_id: Snowflake,
        node: &NodeIdentity,
        pair: IdPair,
    ) -> StoreResult<GuildClaim> {
        let context = "claiming a guild";
        let index = sql_pair(pair)?;
        let (id, generation) = (guild_sql(guild_id), generation(node));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        let leased = db
            .query_opt(
                CLAIMER_LEASE,
                &[&index, &node.node_id, &generation],
                context,
            )
            .await?;
        if leased.is_none() {
            return Ok(GuildClaim::NotLeased);
        }
        let first = db
            .execute(
                FIRST_CLAIM,
                &[&id, &node.node_id, &generation, &index],
                context,
            )
            .await?;
        let mine = GuildOwner {
            guild_id,
            node: node.clone(),
            pair,
            epoch: 1,
        };
        if first == 1 {
            tx.commit().await.map_err(db_error(context))?;
            return Ok(GuildClaim::Claimed(mine));
        }
        let locked = format!("{OWNER} FOR UPDATE OF o");
        let row = db
            .query_opt(&locked, &[&id], context)
            .await?
            .ok_or_else(|| StoreError::Backend("a guild owner record vanished".into()))?;
        let (current, live) = owner_row(guild_id, &row)?;
        if live {
            return Ok(if current.node == *node {
                GuildClaim::Claimed(current)
            } else {
                GuildClaim::Held(current)
            });
        }
        let row = db
            .query_opt(
                TAKE_OVER,
                &[&id, &node.node_id, &generation, &index],
                context,
            )
            .await?
            .ok_or_else(|| StoreError::Backend("taking a guild over returned nothing".into()))?;
        let epoch = col::<i64>(&row, 0)? as u64;
        tx.commit().await.map_err(db_error(context))?;
        Ok(GuildClaim::Claimed(GuildOwner { epoch, ..mine }))
    }

    async fn guild_owner(&self, guild_id: Snowflake) -> StoreResult<Option<GuildOwner>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(OWNER, &[&guild_sql(guild_id)], "reading a guild's owner")
            .await?;
        match row {
            Some(row) => {
                let (owner, live) = owner_row(guild_id, &row)?;
                Ok(live.then_some(owner))
            }
            None => Ok(None),
        }
    }

    async fn release_guild(&self, owner: &GuildOwner) -> StoreResult<bool> {
        let client = self.client().await?;
        let released = Db::Conn(&client)
            .execute(
                RELEASE_GUILD,
                &[
                    &guild_sql(owner.guild_id),
                    &owner.node.node_id,
                    &generation(&owner.node),
                    &(owner.epoch as i64),
                ],
                "releasing a guild",
            )
            .await?;
        Ok(released > 0)
    }

    async fn guilds_owned_by(&self, node: &NodeIdentity) -> StoreResult<Vec<GuildOwner>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                OWNED_BY,
                &[&node.node_id, &generation(node)],
                "listing a node's guilds",
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(GuildOwner {
                    guild_id: Snowflake(col::<i64>(row, 0)? as u64),
                    node: node.clone(),
                    pair: index_pair(col::<i16>(row, 1)?)?,
                    epoch: col::<i64>(row, 2)? as u64,
                })
            })
            .collect()
    }
}
