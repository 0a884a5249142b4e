//! Starts a real node in a temporary directory and registers users through the SDK.

use enrichment_client::protocol::Snowflake;
use enrichment_client::protocol::rest::{CreateGuild, RegisterRequest};
use enrichment_client::{Client, Token};
use enrichment_node::{Config, Node};
use tempfile::TempDir;

pub struct TestNode {
    _node: Node,
    _dir: TempDir,
    /// A client without a token, for this node.
    pub anon: Client,
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::ephemeral(dir.path());
        tweak(&mut config);
        let node = Node::start(config).await.expect("node starts");
        let anon = Client::new(node.api_url()).expect("client");
        TestNode {
            _node: node,
            _dir: dir,
            anon,
        }
    }

    /// Registers `name` and returns a client carrying its access token.
    pub async fn user(&self, name: &str) -> Client {
        let r = self
            .anon
            .register(&RegisterRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: "correct horse battery".into(),
                ..RegisterRequest::default()
            })
            .await
            .expect("register");
        self.anon.with_token(Token::Bearer(r.token))
    }

    /// A guild owned by `owner`; returns (guild id, `#general` id).
    pub async fn guild(&self, owner: &Client, name: &str) -> (Snowflake, Snowflake) {
        let g = owner
            .create_guild(&CreateGuild {
                name: name.into(),
                ..CreateGuild::default()
            })
            .await
            .expect("create guild");
        let channels = owner.get_guild_channels(g.id).await.expect("channels");
        (g.id, channels[0].id)
    }
}
