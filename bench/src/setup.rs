//! Builds the world a load runs against: users, guilds, text channels, memberships and (optionally)
//! some seed messages, all through the public REST API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Channel, ChannelType, Guild, Invite, Message};
use enrichment_protocol::rest::{
    CreateChannel, CreateGuild, CreateInvite, CreateMessage, RegisterRequest, RegisterResponse,
};
use reqwest::header::HeaderValue;
use reqwest::{Client, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

/// What to create before the measured run.
#[derive(Clone, Debug)]
pub struct SetupPlan {
    pub users: usize,
    pub guilds: usize,
    pub channels_per_guild: usize,
    /// Messages posted to each channel before the run, so `list` reads full pages from the start.
    pub seed_messages: usize,
    /// Concurrent setup requests (registration is argon2-bound on the server).
    pub parallelism: usize,
}

/// A registered user and its ready-made `Authorization` header.
#[derive(Clone, Debug)]
pub struct LoadUser {
    pub username: String,
    pub auth: HeaderValue,
}

/// The result of setup: every user is a member of every guild, so any user may use any channel.
#[derive(Clone, Debug)]
pub struct World {
    pub users: Vec<LoadUser>,
    pub guilds: Vec<Snowflake>,
    pub channels: Vec<Snowflake>,
}

/// A thin JSON client for setup calls; every non-expected status is an error with its body.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    pub(crate) client: Client,
    pub(crate) base: String,
}

impl Api {
    /// Registers `username` (a load-test address and password derived from it); returns the
    /// access token and the same as an `Authorization` header.
    pub(crate) async fn register(&self, username: &str) -> anyhow::Result<(String, HeaderValue)> {
        let req = RegisterRequest {
            username: username.to_owned(),
            email: format!("{username}@load.invalid"),
            password: format!("load-password-{username}"),
            global_name: None,
        };
        let res: RegisterResponse = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(&req),
                StatusCode::CREATED,
            )
            .await?;
        let auth = HeaderValue::from_str(&res.token).context("token is not a header")?;
        Ok((res.token, auth))
    }

    /// Creates a guild owned by `auth`; returns it and its text channels.
    pub(crate) async fn create_guild(
        &self,
        auth: &HeaderValue,
        name: String,
    ) -> anyhow::Result<(Guild, Vec<Snowflake>)> {
        let guild: Guild = self
            .call(
                Method::POST,
                "/guilds",
                Some(auth),
                Some(&CreateGuild {
                    name,
                    ..Default::default()
                }),
                StatusCode::CREATED,
            )
            .await
            .context("creating a guild")?;
        let channels: Vec<Channel> = self
            .call::<(), _>(
                Method::GET,
                &format!("/guilds/{}/channels", guild.id),
                Some(auth),
                None,
                StatusCode::OK,
            )
            .await
            .context("listing guild channels")?;
        let text = channels
            .iter()
            .filter(|c| c.kind == ChannelType::GUILD_TEXT)
            .map(|c| c.id)
            .collect();
        Ok((guild, text))
    }

    /// A never-expiring invite to `channel`; returns its code.
    pub(crate) async fn invite(
        &self,
        auth: &HeaderValue,
        channel: Snowflake,
    ) -> anyhow::Result<String> {
        let invite: Invite = self
            .call(
                Method::POST,
                &format!("/channels/{channel}/invites"),
                Some(auth),
                Some(&CreateInvite {
                    max_age: Some(0),
                    ..Default::default()
                }),
                StatusCode::OK,
            )
            .await
            .context("creating an invite")?;
        Ok(invite.code)
    }

    /// Accepts each `(user, invite code)` pair, `parallelism` at a time.
    pub(crate) async fn join_all(
        &self,
        joins: Vec<(HeaderValue, String)>,
        parallelism: usize,
    ) -> anyhow::Result<()> {
        bounded(joins, parallelism, |(auth, code)| {
            let api = self.clone();
            async move {
                let _: Invite = api
                    .call(
                        Method::POST,
                        &format!("/invites/{code}"),
                        Some(&auth),
                        Some(&serde_json::json!({})),
                        StatusCode::OK,
                    )
                    .await?;
                Ok(())
            }
        })
        .await
        .context("joining guilds")?;
        Ok(())
    }

    pub(crate) async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<&B>,
        expect: StatusCode,
    ) -> anyhow::Result<T> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.client.request(method.clone(), &url);
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: reading the body"))?;
        if status != expect {
            bail!(
                "{method} {url}: expected {expect}, got {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {url}: decoding the {status} body"))
    }
}

/// A short run id so repeated runs against one data dir never collide on usernames.
pub(crate) fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32);
    let mut s = String::new();
    for _ in 0..6 {
        let d = (n % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    s
}

/// Runs `f` over `items` with at most `parallelism` in flight, keeping input order.
pub(crate) async fn bounded<I, T, F, Fut>(
    items: Vec<I>,
    parallelism: usize,
    f: F,
) -> anyhow::Result<Vec<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let n = items.len();
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut set = JoinSet::new();
    let mut pending = items.into_iter().enumerate();
    let limit = parallelism.max(1);
    loop {
        while set.len() < limit {
            match pending.next() {
                Some((i, item)) => {
                    let fut = f(item);
                    set.spawn(async move { (i, fut.await) });
                }
                None => break,
            }
        }
        match set.join_next().await {
            Some(joined) => {
                let (i, r) = joined.context("setup task panicked")?;
                out[i] = Some(r?);
            }
            None => break,
        }
    }
    out.into_iter()
        .map(|o| o.context("setup task result missing"))
        .collect()
}

/// Registers users, creates guilds with `channels_per_guild` text channels each, has every user
/// join every guild through an invite, and posts the seed messages.
pub async fn build_world(client: &Client, base: &str, plan: &SetupPlan) -> anyhow::Result<World> {
    anyhow::ensure!(plan.users >= 1, "need at least one user");
    anyhow::ensure!(plan.guilds >= 1, "need at least one guild");
    anyhow::ensure!(
        plan.channels_per_guild >= 1,
        "need at least one channel per guild"
    );
    let api = Api {
        client: client.clone(),
        base: base.trim_end_matches('/').to_owned(),
    };
    let run = run_id();

    // Users. Usernames: 2–32 chars of [a-z0-9_.].
    let users = bounded((0..plan.users).collect(), plan.parallelism, |i: usize| {
        let api = api.clone();
        let username = format!("load_{run}_{i}");
        async move {
            let (_, auth) = api.register(&username).await?;
            Ok(LoadUser { username, auth })
        }
    })
    .await
    .context("registering users")?;

    // Guilds, owned round-robin by the users, each with its text channels and one invite.
    let mut guilds = Vec::with_capacity(plan.guilds);
    let mut channels = Vec::with_capacity(plan.guilds * plan.channels_per_guild);
    let mut invites = Vec::with_capacity(plan.guilds);
    for g in 0..plan.guilds {
        let owner = &users[g % users.len()];
        let (guild, mut text) = api
            .create_guild(&owner.auth, format!("load {run} {g}"))
            .await?;
        while text.len() < plan.channels_per_guild {
            let c: Channel = api
                .call(
                    Method::POST,
                    &format!("/guilds/{}/channels", guild.id),
                    Some(&owner.auth),
                    Some(&CreateChannel {
                        name: format!("load-{}", text.len()),
                        kind: Some(ChannelType::GUILD_TEXT),
                        ..Default::default()
                    }),
                    StatusCode::CREATED,
                )
                .await
                .context("creating a channel")?;
            text.push(c.id);
        }
        text.truncate(plan.channels_per_guild);
        let first = text.first().copied().context("guild has no text channel")?;
        let code = api.invite(&owner.auth, first).await?;
        guilds.push(guild.id);
        channels.extend(text);
        invites.push((g, code));
    }

    // Everyone joins every guild they do not own.
    let mut joins = Vec::new();
    for (g, code) in &invites {
        for (u, user) in users.iter().enumerate() {
            if u != g % users.len() {
                joins.push((user.auth.clone(), code.clone()));
            }
        }
    }
    api.join_all(joins, plan.parallelism).await?;

    // Seed messages, so the first `list` requests already read a full page.
    let mut seeds = Vec::new();
    for (ci, &channel) in channels.iter().enumerate() {
        for m in 0..plan.seed_messages {
            let auth = users[(ci + m) % users.len()].auth.clone();
            seeds.push((channel, auth, m));
        }
    }
    bounded(seeds, plan.parallelism, |(channel, auth, m)| {
        let api = api.clone();
        async move {
            let _: Message = api
                .call(
                    Method::POST,
                    &format!("/channels/{channel}/messages"),
                    Some(&auth),
                    Some(&CreateMessage {
                        content: Some(format!("seed message {m}")),
                        ..Default::default()
                    }),
                    StatusCode::OK,
                )
                .await?;
            Ok(())
        }
    })
    .await
    .context("posting seed messages")?;

    Ok(World {
        users,
        guilds,
        channels,
    })
}

/// How long setup may take before the harness gives up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
