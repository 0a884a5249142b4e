//! The link handshake, without I/O: messages in, messages out, randomness passed in.
//!
//! ```text
//! dialer                                         listener
//!   Greeting { dialer, listener_id, nonce_d }  ->
//!                                              <-  Challenge { listener, nonce_l, proof_l }
//!   Answer { proof_d, next_seq, stream_start } ->
//!                                              <-  Accept
//! ```
//! `proof_l = HMAC(secret, "listener" | dialer | listener | nonce_d | nonce_l)` and
//! `proof_d = HMAC(secret, "dialer" | dialer | listener | nonce_d | nonce_l | next_seq |
//! stream_start)`, every variable-length field length-prefixed. Each side proves the secret over
//! the other's fresh nonce, so a recorded handshake is worth nothing later; both identities are
//! in both proofs, so a proof for one pair of processes does not open a link between others; the
//! role label keeps a listener's proof from serving as a dialer's. Proofs are compared in
//! constant time.

use std::sync::Arc;

use enrichment_protocol::node::NodeIdentity;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::outbound::StreamHello;

type HmacSha256 = Hmac<Sha256>;

/// A random nonce or an HMAC-SHA256 output.
pub(crate) type Block = [u8; 32];

/// The cluster secret as links use it: checked for length once, shared by every link. Its
/// bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct LinkSecret(Arc<[u8]>);

impl LinkSecret {
    /// The shortest secret accepted.
    pub const MIN_LEN: usize = crate::config::MIN_SECRET_BYTES;

    pub fn new(secret: impl Into<Vec<u8>>) -> Result<LinkSecret, SecretError> {
        let secret = secret.into();
        if secret.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort {
                len: secret.len(),
                min: Self::MIN_LEN,
            });
        }
        Ok(LinkSecret(secret.into()))
    }

    /// The key of the `[cluster]` secret.
    pub fn from_config(secret: &crate::config::ClusterSecret) -> Result<LinkSecret, SecretError> {
        LinkSecret::new(secret.expose())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }
}

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(<redacted>)")
    }
}

/// A cluster secret that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the cluster secret has {len} bytes; at least {min} are needed")]
    TooShort { len: usize, min: usize },
}

/// The messages of the handshake, each sent as one frame of the handshake kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum HandshakeMessage {
    Greeting {
        dialer: NodeIdentity,
        /// The node id the dialer means to reach; a listener with another id refuses.
        listener_id: String,
        nonce: Block,
    },
    Challenge {
        listener: NodeIdentity,
        nonce: Block,
        proof: Block,
    },
    Answer {
        proof: Block,
        next_seq: u64,
        stream_start: u64,
    },
    Accept,
}

impl HandshakeMessage {
    fn name(&self) -> &'static str {
        match self {
            HandshakeMessage::Greeting { .. } => "greeting",
            HandshakeMessage::Challenge { .. } => "challenge",
            HandshakeMessage::Answer { .. } => "answer",
            HandshakeMessage::Accept => "accept",
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("expected a {expected}, got a {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("wanted node {wanted}, reached node {actual}")]
    WrongNode { wanted: String, actual: String },
    #[error("a node may not link to itself")]
    SelfLink,
    /// The peer's proof does not verify: another secret, or a replay.
    #[error("the peer's proof does not verify (wrong cluster secret or a replayed handshake)")]
    BadProof,
}

#[derive(Clone, Copy)]
enum Role {
    Dialer,
    Listener,
}

struct Transcript<'a> {
    dialer: &'a NodeIdentity,
    listener: &'a NodeIdentity,
    dialer_nonce: &'a Block,
    listener_nonce: &'a Block,
}

impl Transcript<'_> {
    fn mac(&self, secret: &LinkSecret, role: Role, hello: Option<StreamHello>) -> HmacSha256 {
        let mut mac = secret.mac();
        mac.update(b"enrichment cluster link v1\0");
        mac.update(match role {
            Role::Dialer => b"dialer\0",
            Role::Listener => b"listen\0",
        });
        for identity in [self.dialer, self.listener] {
            mac.update(&(identity.node_id.len() as u64).to_be_bytes());
            mac.update(identity.node_id.as_bytes());
            mac.update(&identity.generation.0.to_be_bytes());
        }
        mac.update(self.dialer_nonce);
        mac.update(self.listener_nonce);
        if let Some(hello) = hello {
            mac.update(&hello.next_seq.to_be_bytes());
            mac.update(&hello.stream_start.to_be_bytes());
        }
        mac
    }

    fn prove(&self, secret: &LinkSecret, role: Role, hello: Option<StreamHello>) -> Block {
        self.mac(secret, role, hello).finalize().into_bytes().into()
    }

    fn verify(
        &self,
        secret: &LinkSecret,
        role: Role,
        hello: Option<StreamHello>,
        proof: &Block,
    ) -> Result<(), HandshakeError> {
        self.mac(secret, role, hello)
            .verify_slice(proof)
            .map_err(|_| HandshakeError::BadProof)
    }
}

/// The dialling side, before the challenge.
pub(crate) struct Dialer {
    secret: LinkSecret,
    local: NodeIdentity,
    listener_id: String,
    nonce: Block,
}

impl Dialer {
    /// Starts a handshake towards `listener_id`; send the returned greeting.
    pub fn start(
        secret: LinkSecret,
        local: NodeIdentity,
        listener_id: &str,
        nonce: Block,
    ) -> (Dialer, HandshakeMessage) {
        let greeting = HandshakeMessage::Greeting {
            dialer: local.clone(),
            listener_id: listener_id.to_owned(),
            nonce,
        };
        let dialer = Dialer {
            secret,
            local,
            listener_id: listener_id.to_owned(),
            nonce,
        };
        (dialer, greeting)
    }

    /// Checks the listener's challenge: the right node, and a proof made with our secret over our
    /// nonce.
    pub fn on_challenge(
        self,
        message: HandshakeMessage,
    ) -> Result<ListenerVerified, HandshakeError> {
        let HandshakeMessage::Challenge {
            listener,
            nonce,
            proof,
        } = message
        else {
            return Err(HandshakeError::Unexpected {
                expected: "challenge",
                got: message.name(),
            });
        };
        if listener.node_id != self.listener_id {
            return Err(HandshakeError::WrongNode {
                wanted: self.listener_id,
                actual: listener.node_id,
            });
        }
        let transcript = Transcript {
            dialer: &self.local,
            listener: &listener,
            dialer_nonce: &self.nonce,
            listener_nonce: &nonce,
        };
        transcript.verify(&self.secret, Role::Listener, None, &proof)?;
        Ok(ListenerVerified {
            secret: self.secret,
            local: self.local,
            nonce: self.nonce,
            listener,
            listener_nonce: nonce,
        })
    }
}

/// The dialling side once the listener has proved itself: it now knows which process it
/// reached, and answers with its own proof and the state of its stream to that process.
pub(crate) struct ListenerVerified {
    secret: LinkSecret,
    local: NodeIdentity,
    nonce: Block,
    listener: NodeIdentity,
    listener_nonce: Block,
}

impl ListenerVerified {
    pub fn peer(&self) -> &NodeIdentity {
        &self.listener
    }

    /// The answer to send; the listener replies `Accept` or closes.
    pub fn answer(self, hello: StreamHello) -> (NodeIdentity, HandshakeMessage) {
        let transcript = Transcript {
            dialer: &self.local,
            listener: &self.listener,
            dialer_nonce: &self.nonce,
            listener_nonce: &self.listener_nonce,
        };
        let proof = transcript.prove(&self.secret, Role::Dialer, Some(hello));
        let answer = HandshakeMessage::Answer {
            proof,
            next_seq: hello.next_seq,
            stream_start: hello.stream_start,
        };
        (self.listener, answer)
    }
}

/// The accepting side, once it has sent its challenge.
pub(crate) struct Listener {
    secret: LinkSecret,
    local: NodeIdentity,
    nonce: Block,
    dialer: NodeIdentity,
    dialer_nonce: Block,
}

impl Listener {
    /// Reads a greeting and returns the challenge to send.
    pub fn on_greeting(
        secret: LinkSecret,
        local: NodeIdentity,
        message: HandshakeMessage,
        nonce: Block,
    ) -> Result<(Listener, HandshakeMessage), HandshakeError> {
        let HandshakeMessage::Greeting {
            dialer,
            listener_id,
            nonce: dialer_nonce,
        } = message
        else {
            return Err(HandshakeError::Unexpected {
                expected: "greeting",
                got: message.name(),
            });
        };
        if listener_id != local.node_id {
            return Err(HandshakeError::WrongNode {
                wanted: listener_id,
                actual: local.node_id,
            });
        }
        if dialer.node_id == local.node_id {
            return Err(HandshakeError::SelfLink);
        }
        let transcript = Transcript {
            dialer: &dialer,
            listener: &local,
            dialer_nonce: &dialer_nonce,
            listener_nonce: &nonce,
        };
        let proof = transcript.prove(&secret, Role::Listener, None);
        let challenge = HandshakeMessage::Challenge {
            listener: local.clone(),
            nonce,
            proof,
        };
        let listener = Listener {
            secret,
            local,
            nonce,
            dialer,
            dialer_nonce,
        };
        Ok((listener, challenge))
    }

    /// The identity the dialer claims; proved only once [`on_answer`](Self::on_answer) succeeds.
    pub fn claimed_peer(&self) -> &NodeIdentity {
        &self.dialer
    }

    /// Checks the dialer's answer; on success the link belongs to the returned identity.
    pub fn on_answer(
        self,
        message: HandshakeMessage,
    ) -> Result<(NodeIdentity, StreamHello), HandshakeError> {
        let HandshakeMessage::Answer {
            proof,
            next_seq,
            stream_start,
        } = message
        else {
            return Err(HandshakeError::Unexpected {
                expected: "answer",
                got: message.name(),
            });
        };
        let hello = StreamHello {
            next_seq,
            stream_start,
        };
        let transcript = Transcript {
            dialer: &self.dialer,
            listener: &self.local,
            dialer_nonce: &self.dialer_nonce,
            listener_nonce: &self.nonce,
        };
        transcript.verify(&self.secret, Role::Dialer, Some(hello), &proof)?;
        Ok((self.dialer, hello))
    }
}

/// Checks that a message is the listener's final `Accept`.
pub(crate) fn expect_accept(message: HandshakeMessage) -> Result<(), HandshakeError> {
    match message {
        HandshakeMessage::Accept => Ok(()),
        other => Err(HandshakeError::Unexpected {
            expected: "accept",
            got: other.name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use enrichment_protocol::node::GenerationId;

    use super::*;

    fn secret(byte: u8) -> LinkSecret {
        LinkSecret::new(vec![byte; 32]).unwrap()
    }

    fn node(id: &str, generation: u64) -> NodeIdentity {
        NodeIdentity::new(id, GenerationId(generation))
    }

    const HELLO: StreamHello = StreamHello {
        next_seq: 12,
        stream_start: 10,
    };

    /// Runs a handshake between two secrets and returns what each side concluded.
    fn run(
        dialer_secret: LinkSecret,
        listener_secret: LinkSecret,
    ) -> Result<(NodeIdentity, NodeIdentity, StreamHello), HandshakeError> {
        let (dialer, greeting) = Dialer::start(dialer_secret, node("a", 1), "b", [1; 32]);
        let (listener, challenge) =
            Listener::on_greeting(listener_secret, node("b", 2), greeting, [2; 32])?;
        let verified = dialer.on_challenge(challenge)?;
        let (listener_seen, answer) = verified.answer(HELLO);
        let (dialer_seen, hello) = listener.on_answer(answer)?;
        Ok((listener_seen, dialer_seen, hello))
    }

    #[test]
    fn nodes_sharing_the_secret_learn_each_others_identity_and_the_stream_state() {
        let (listener_seen, dialer_seen, hello) = run(secret(7), secret(7)).unwrap();
        assert_eq!(listener_seen, node("b", 2));
        assert_eq!(dialer_seen, node("a", 1));
        assert_eq!(hello, HELLO);
    }

    #[test]
    fn a_dialer_with_another_secret_is_refused_by_the_listener_and_refuses_it_first() {
        // The listener proves first, so the dialer notices before answering.
        assert_eq!(run(secret(1), secret(2)), Err(HandshakeError::BadProof));
        // A dialer that answers anyway, with a proof made from its own secret, is refused.
        let (_, greeting) = Dialer::start(secret(1), node("a", 1), "b", [1; 32]);
        let (listener, challenge) =
            Listener::on_greeting(secret(2), node("b", 2), greeting, [2; 32]).unwrap();
        let HandshakeMessage::Challenge { nonce, .. } = challenge else {
            panic!("not a challenge")
        };
        let forged = Transcript {
            dialer: &node("a", 1),
            listener: &node("b", 2),
            dialer_nonce: &[1; 32],
            listener_nonce: &nonce,
        }
        .prove(&secret(1), Role::Dialer, Some(HELLO));
        let answer = HandshakeMessage::Answer {
            proof: forged,
            next_seq: HELLO.next_seq,
            stream_start: HELLO.stream_start,
        };
        assert_eq!(listener.on_answer(answer), Err(HandshakeError::BadProof));
    }

    #[test]
    fn a_recorded_answer_replayed_against_a_fresh_challenge_is_refused() {
        let (dialer, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let (listener, challenge) =
            Listener::on_greeting(secret(7), node("b", 2), greeting.clone(), [2; 32]).unwrap();
        let (_, answer) = dialer.on_challenge(challenge).unwrap().answer(HELLO);
        assert!(listener.on_answer(answer.clone()).is_ok());

        // The replay: same greeting, same answer; the listener picked another nonce.
        let (listener, _) =
            Listener::on_greeting(secret(7), node("b", 2), greeting, [3; 32]).unwrap();
        assert_eq!(listener.on_answer(answer), Err(HandshakeError::BadProof));
    }

    #[test]
    fn a_recorded_challenge_replayed_to_a_new_dial_is_refused() {
        let (_, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let (_, challenge) =
            Listener::on_greeting(secret(7), node("b", 2), greeting, [2; 32]).unwrap();
        let (dialer, _) = Dialer::start(secret(7), node("a", 1), "b", [4; 32]);
        assert!(matches!(
            dialer.on_challenge(challenge),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn proofs_are_bound_to_both_identities_the_role_and_the_stream_state() {
        let (_, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let (listener, challenge) =
            Listener::on_greeting(secret(7), node("b", 2), greeting, [2; 32]).unwrap();
        let HandshakeMessage::Challenge { nonce, proof, .. } = challenge.clone() else {
            panic!("not a challenge")
        };

        // The same challenge claiming another generation of the listener.
        let (dialer, _) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let relabelled = HandshakeMessage::Challenge {
            listener: node("b", 3),
            nonce,
            proof,
        };
        assert!(matches!(
            dialer.on_challenge(relabelled),
            Err(HandshakeError::BadProof)
        ));

        // A dialer of another generation cannot use a challenge made for generation 1.
        let (dialer, _) = Dialer::start(secret(7), node("a", 9), "b", [1; 32]);
        assert!(matches!(
            dialer.on_challenge(challenge.clone()),
            Err(HandshakeError::BadProof)
        ));

        // The listener's own proof reflected back as the dialer's.
        let reflected = HandshakeMessage::Answer {
            proof,
            next_seq: 0,
            stream_start: 0,
        };
        let (reflect_target, _) = Listener::on_greeting(
            secret(7),
            node("b", 2),
            Dialer::start(secret(7), node("a", 1), "b", [1; 32]).1,
            [2; 32],
        )
        .unwrap();
        assert_eq!(
            reflect_target.on_answer(reflected),
            Err(HandshakeError::BadProof)
        );

        // A genuine answer whose stream state was altered on the way.
        let (dialer, _) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let (_, answer) = dialer.on_challenge(challenge).unwrap().answer(HELLO);
        let HandshakeMessage::Answer { proof, .. } = answer else {
            panic!("not an answer")
        };
        let altered = HandshakeMessage::Answer {
            proof,
            next_seq: HELLO.next_seq + 5,
            stream_start: HELLO.stream_start,
        };
        assert_eq!(listener.on_answer(altered), Err(HandshakeError::BadProof));
    }

    #[test]
    fn a_greeting_for_another_node_or_from_the_listener_itself_is_refused() {
        let (_, greeting) = Dialer::start(secret(7), node("a", 1), "c", [1; 32]);
        assert!(matches!(
            Listener::on_greeting(secret(7), node("b", 2), greeting, [2; 32]),
            Err(HandshakeError::WrongNode { .. })
        ));
        let (_, greeting) = Dialer::start(secret(7), node("b", 1), "b", [1; 32]);
        assert!(matches!(
            Listener::on_greeting(secret(7), node("b", 2), greeting, [2; 32]),
            Err(HandshakeError::SelfLink)
        ));
        // A listener answering as another node than the one dialled.
        let (dialer, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let HandshakeMessage::Greeting {
            dialer: d, nonce, ..
        } = greeting
        else {
            panic!("not a greeting")
        };
        let impostor = HandshakeMessage::Greeting {
            dialer: d,
            listener_id: "c".into(),
            nonce,
        };
        let (_, challenge) =
            Listener::on_greeting(secret(7), node("c", 2), impostor, [2; 32]).unwrap();
        assert!(matches!(
            dialer.on_challenge(challenge),
            Err(HandshakeError::WrongNode { .. })
        ));
    }

    #[test]
    fn messages_out_of_turn_are_refused() {
        let (dialer, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        assert!(matches!(
            dialer.on_challenge(greeting.clone()),
            Err(HandshakeError::Unexpected {
                expected: "challenge",
                got: "greeting"
            })
        ));
        assert!(matches!(
            Listener::on_greeting(secret(7), node("b", 2), HandshakeMessage::Accept, [2; 32]),
            Err(HandshakeError::Unexpected { .. })
        ));
        assert!(expect_accept(greeting).is_err());
        assert!(expect_accept(HandshakeMessage::Accept).is_ok());
    }

    #[test]
    fn handshake_messages_are_named_maps_that_round_trip() {
        let (_, greeting) = Dialer::start(secret(7), node("a", 1), "b", [1; 32]);
        let bytes = rmp_serde::to_vec_named(&greeting).unwrap();
        assert!(bytes.windows(11).any(|w| w == b"listener_id"));
        let back: HandshakeMessage = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, greeting);
        let accept = rmp_serde::to_vec_named(&HandshakeMessage::Accept).unwrap();
        let back: HandshakeMessage = rmp_serde::from_slice(&accept).unwrap();
        assert_eq!(back, HandshakeMessage::Accept);
    }

    #[test]
    fn a_short_secret_is_refused_and_no_secret_is_ever_printed() {
        assert!(matches!(
            LinkSecret::new(b"short".to_vec()),
            Err(SecretError::TooShort { len: 5, min: 16 })
        ));
        let secret = LinkSecret::new(b"correct horse battery staple".to_vec()).unwrap();
        let printed = format!("{secret:?} {:?}", Some(secret.clone()));
        assert!(!printed.contains("horse"));
        assert!(printed.contains("redacted"));
    }
}
