//! The world a gateway run needs, built through the REST API: users, guilds with one text
//! channel each, and memberships (every guild gets its own disjoint set of members).

use anyhow::Context;
use enrichment_protocol::Snowflake;
use reqwest::Client;
use reqwest::header::HeaderValue;

use crate::setup::{Api, bounded, run_id};

/// How many guilds, and how many users in each.
#[derive(Clone, Copy, Debug)]
pub struct WorldPlan {
    pub guilds: usize,
    pub users_per_guild: usize,
    /// Concurrent setup requests.
    pub parallelism: usize,
}

#[derive(Clone, Debug)]
pub struct GwUser {
    /// The JWT, as sent in IDENTIFY.
    pub token: String,
    /// The same, as an `Authorization` header.
    pub auth: HeaderValue,
    /// Index into [`GwWorld::guilds`] of the one guild this user is in.
    pub guild: usize,
}

#[derive(Clone, Debug)]
pub struct GwGuild {
    pub id: Snowflake,
    /// Its text channel, where messages are posted.
    pub channel: Snowflake,
    /// Its members, as indices into [`GwWorld::users`] (the first one owns it).
    pub members: std::ops::Range<usize>,
}

#[derive(Clone, Debug)]
pub struct GwWorld {
    pub users: Vec<GwUser>,
    pub guilds: Vec<GwGuild>,
}

impl GwWorld {
    /// Per guild, where its messages are posted and as whom: its channel and its members'
    /// `Authorization` headers (what an open-loop schedule takes in turn).
    pub fn post_targets(&self) -> Vec<(Snowflake, Vec<HeaderValue>)> {
        self.guilds
            .iter()
            .map(|g| {
                (
                    g.channel,
                    g.members
                        .clone()
                        .map(|u| self.users[u].auth.clone())
                        .collect(),
                )
            })
            .collect()
    }
}

/// Registers `guilds * users_per_guild` users; user `i` is in guild `i / users_per_guild`, the
/// first user of each guild creates it and the others join it through an invite.
pub async fn build(client: &Client, base: &str, plan: &WorldPlan) -> anyhow::Result<GwWorld> {
    anyhow::ensure!(plan.guilds >= 1, "need at least one guild");
    anyhow::ensure!(
        plan.users_per_guild >= 1,
        "need at least one user per guild"
    );
    let api = Api {
        client: client.clone(),
        base: base.trim_end_matches('/').to_owned(),
    };
    let run = run_id();
    let n = plan.guilds * plan.users_per_guild;
    let upg = plan.users_per_guild;

    let users = bounded((0..n).collect(), plan.parallelism, |i: usize| {
        let api = api.clone();
        let username = format!("gw_{run}_{i}");
        async move {
            let (token, auth) = api.register(&username).await?;
            Ok(GwUser {
                token,
                auth,
                guild: i / upg,
            })
        }
    })
    .await
    .context("registering users")?;

    let owners: Vec<(usize, HeaderValue)> = (0..plan.guilds)
        .map(|g| (g, users[g * upg].auth.clone()))
        .collect();
    let created = bounded(owners, plan.parallelism, |(g, auth)| {
        let api = api.clone();
        async move {
            let (guild, text) = api.create_guild(&auth, format!("gateway load {g}")).await?;
            let channel = *text.first().context("a new guild has no text channel")?;
            let code = api.invite(&auth, channel).await?;
            Ok((
                GwGuild {
                    id: guild.id,
                    channel,
                    members: g * upg..(g + 1) * upg,
                },
                code,
            ))
        }
    })
    .await
    .context("creating guilds")?;

    let mut joins = Vec::new();
    for (guild, code) in &created {
        for u in guild.members.clone().skip(1) {
            joins.push((users[u].auth.clone(), code.clone()));
        }
    }
    api.join_all(joins, plan.parallelism).await?;

    Ok(GwWorld {
        users,
        guilds: created.into_iter().map(|(g, _)| g).collect(),
    })
}
