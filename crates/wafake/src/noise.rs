//! The Noise responder: XX for a fresh or cert-less client, IK for a registered device that
//! cached the server's certificate chain, and XXfallback when an IK ClientHello was encrypted
//! to another server key (a chain cached from an earlier server). Built on `wacore_noise::NoiseHandshake`, the way
//! the crate's own test responders are (`wacore-noise/src/handshake.rs:743-879`).
//!
//! The certificate chain is `wacore_noise::test_util::build_cert_chain_bytes`: zero-signed,
//! of the shape the client checks, its leaf key the server's static key. A client accepts it
//! only with `danger-skip-cert-chain-verify`.

use anyhow::{anyhow, Context, Result};
use buffa::Message;
use rand10::rngs::StdRng;
use wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::whatsapp::{self as wa, HandshakeMessage};

/// A fresh random source for the key types of the wacore crates.
pub fn rng() -> StdRng {
    rand10::make_rng::<StdRng>()
}

/// The server's long-lived static key and the certificate chain naming it.
pub struct ServerIdentity {
    static_kp: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    /// A new random identity.
    pub fn generate() -> Self {
        let static_kp = KeyPair::generate(&mut rng());
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&static_pub(&static_kp));
        Self { static_kp, cert_chain }
    }
}

fn static_pub(kp: &KeyPair) -> [u8; 32] {
    kp.public_key.public_key_bytes().try_into().expect("X25519 public keys are 32 bytes")
}

fn key32(bytes: Option<Vec<u8>>, what: &str) -> Result<[u8; 32]> {
    bytes
        .ok_or_else(|| anyhow!("{what} missing"))?
        .try_into()
        .map_err(|_| anyhow!("{what} is not 32 bytes"))
}

/// Transport ciphers of a finished handshake, seen from the server.
pub struct Keys {
    /// Decrypts what the client sends.
    pub read: NoiseCipher,
    /// Encrypts what the server sends.
    pub write: NoiseCipher,
}

/// Where the handshake stands after the ClientHello.
pub enum Started {
    /// XX: send `reply`, then pass the ClientFinish to [`XxPending::finish`].
    Xx { reply: Vec<u8>, pending: XxPending },
    /// IK: send `reply`; the handshake is done.
    Ik { reply: Vec<u8>, keys: Keys, client_payload: wa::ClientPayload },
}

/// An XX handshake waiting for the client's ClientFinish.
pub struct XxPending {
    noise: NoiseHandshake,
    server_eph: KeyPair,
}

/// Answers a ClientHello (the first frame after the prologue).
pub fn respond(id: &ServerIdentity, client_hello: &[u8]) -> Result<Started> {
    let msg = HandshakeMessage::decode_from_slice(client_hello).context("decode ClientHello")?;
    let hello = msg.client_hello.into_option().ok_or_else(|| anyhow!("no client_hello"))?;
    let client_eph = key32(hello.ephemeral, "client ephemeral")?;
    match (hello.r#static, hello.payload) {
        (Some(enc_static), Some(enc_payload)) => ik(id, client_eph, &enc_static, &enc_payload),
        _ => xx(id, client_eph, NOISE_PATTERN_XX),
    }
}

fn server_hello(eph: [u8; 32], stat: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(eph.to_vec()),
            r#static: stat,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn noise_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("noise: {e}")
}

/// XX, or XXfallback (the same messages under another protocol name, the client's
/// ephemeral key reused from its IK attempt).
fn xx(id: &ServerIdentity, client_eph: [u8; 32], pattern: &str) -> Result<Started> {
    let mut noise = NoiseHandshake::new(pattern, &WA_CONN_HEADER).map_err(noise_err)?;
    noise.authenticate(&client_eph);
    let server_eph = KeyPair::generate(&mut rng());
    let eph_pub = static_pub(&server_eph);
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(server_eph.private_key.serialize(), &client_eph).map_err(noise_err)?;
    let enc_static = noise.encrypt(&static_pub(&id.static_kp)).map_err(noise_err)?;
    noise
        .mix_shared_secret(id.static_kp.private_key.serialize(), &client_eph)
        .map_err(noise_err)?;
    let enc_cert = noise.encrypt(&id.cert_chain).map_err(noise_err)?;
    Ok(Started::Xx {
        reply: server_hello(eph_pub, Some(enc_static), enc_cert),
        pending: XxPending { noise, server_eph },
    })
}

impl XxPending {
    /// Reads the ClientFinish: the client's static key and its `ClientPayload`.
    pub fn finish(mut self, client_finish: &[u8]) -> Result<(Keys, wa::ClientPayload)> {
        let msg =
            HandshakeMessage::decode_from_slice(client_finish).context("decode ClientFinish")?;
        let cf = msg.client_finish.into_option().ok_or_else(|| anyhow!("no client_finish"))?;
        let enc_static = cf.r#static.ok_or_else(|| anyhow!("ClientFinish without static"))?;
        let client_static: [u8; 32] = self
            .noise
            .decrypt(&enc_static)
            .map_err(noise_err)?
            .try_into()
            .map_err(|_| anyhow!("client static is not 32 bytes"))?;
        self.noise
            .mix_shared_secret(self.server_eph.private_key.serialize(), &client_static)
            .map_err(noise_err)?;
        let enc_payload = cf.payload.ok_or_else(|| anyhow!("ClientFinish without payload"))?;
        let payload = self.noise.decrypt(&enc_payload).map_err(noise_err)?;
        let client_payload =
            wa::ClientPayload::decode_from_slice(&payload).context("decode ClientPayload")?;
        // The initiator's write key is the responder's read key.
        let (client_write, client_read) = self.noise.finish().map_err(noise_err)?;
        Ok((Keys { read: client_write, write: client_read }, client_payload))
    }
}

fn ik(
    id: &ServerIdentity,
    client_eph: [u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<Started> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER).map_err(noise_err)?;
    noise.authenticate(&static_pub(&id.static_kp));
    noise.authenticate(&client_eph);
    noise
        .mix_shared_secret(id.static_kp.private_key.serialize(), &client_eph)
        .map_err(noise_err)?;
    let client_static: [u8; 32] = match noise.decrypt(enc_static) {
        Ok(s) => s.try_into().map_err(|_| anyhow!("client static is not 32 bytes"))?,
        // Encrypted to another server key: answer XXfallback, the client redoes it as XX.
        Err(_) => return xx(id, client_eph, NOISE_PATTERN_XXFALLBACK),
    };
    noise
        .mix_shared_secret(id.static_kp.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let payload = noise.decrypt(enc_payload).map_err(noise_err)?;
    let client_payload =
        wa::ClientPayload::decode_from_slice(&payload).context("decode ClientPayload")?;

    let server_eph = KeyPair::generate(&mut rng());
    let eph_pub = static_pub(&server_eph);
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(server_eph.private_key.serialize(), &client_eph).map_err(noise_err)?;
    noise
        .mix_shared_secret(server_eph.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let enc_cert = noise.encrypt(&id.cert_chain).map_err(noise_err)?;
    let reply = server_hello(eph_pub, None, enc_cert);
    let (client_write, client_read) = noise.finish().map_err(noise_err)?;
    Ok(Started::Ik { reply, keys: Keys { read: client_write, write: client_read }, client_payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_noise::{IkHandshakeState, IkServerHelloOutcome, XxFallbackHandshakeState};
    use wacore_noise::{XxHandshakeOutcome, XxHandshakeState};

    fn payload() -> Vec<u8> {
        wa::ClientPayload { username: Some(15550001111), device: Some(1), ..Default::default() }
            .encode_to_vec()
    }

    /// Both directions decrypt what the other side encrypted.
    fn assert_interop(client_write: &NoiseCipher, client_read: &NoiseCipher, server: &Keys) {
        let mut up = client_write.encrypt_with_counter(0, b"up").unwrap();
        server.read.decrypt_in_place_with_counter(0, &mut up).unwrap();
        assert_eq!(up, b"up");
        let mut down = server.write.encrypt_with_counter(0, b"down").unwrap();
        client_read.decrypt_in_place_with_counter(0, &mut down).unwrap();
        assert_eq!(down, b"down");
    }

    fn finish_xx(pending: XxPending, client_finish: &[u8], client: &XxHandshakeOutcome) {
        let (keys, got) = pending.finish(client_finish).unwrap();
        assert_eq!(got.username, Some(15550001111));
        assert_interop(&client.write_cipher, &client.read_cipher, &keys);
    }

    #[test]
    fn xx_with_the_real_initiator() {
        let id = ServerIdentity::generate();
        let mut client =
            XxHandshakeState::new(KeyPair::generate(&mut rng()), payload(), &WA_CONN_HEADER)
                .unwrap();
        let Started::Xx { reply, pending } =
            respond(&id, &client.build_client_hello().unwrap()).unwrap()
        else {
            panic!("a bare ClientHello must get XX")
        };
        let finish = client.read_server_hello_and_build_client_finish(&reply).unwrap();
        let outcome = client.finish().unwrap();
        finish_xx(pending, &finish, &outcome);
    }

    #[test]
    fn ik_with_the_cached_key_and_xxfallback_with_a_stale_one() {
        let id = ServerIdentity::generate();
        let static_kp = KeyPair::generate(&mut rng());
        let mut client = IkHandshakeState::new(
            static_kp.clone(),
            static_pub(&id.static_kp),
            payload(),
            &WA_CONN_HEADER,
        )
        .unwrap();
        let Started::Ik { reply, keys, client_payload } =
            respond(&id, &client.build_client_hello().unwrap()).unwrap()
        else {
            panic!("an IK ClientHello to the right key must get IK")
        };
        assert_eq!(client_payload.device, Some(1));
        let IkServerHelloOutcome::Continue(outcome) = client.read_server_hello(&reply).unwrap()
        else {
            panic!("the client must accept the IK answer")
        };
        assert_interop(&outcome.write_cipher, &outcome.read_cipher, &keys);

        // A chain cached from another server: the client must end up connected through XX.
        let stale = static_pub(&KeyPair::generate(&mut rng()));
        let mut client =
            IkHandshakeState::new(static_kp, stale, payload(), &WA_CONN_HEADER).unwrap();
        let Started::Xx { reply, pending } =
            respond(&id, &client.build_client_hello().unwrap()).unwrap()
        else {
            panic!("an IK ClientHello to another key must get XXfallback")
        };
        let IkServerHelloOutcome::Fallback(inputs) = client.read_server_hello(&reply).unwrap()
        else {
            panic!("the client must fall back")
        };
        let mut fallback =
            XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        let finish = fallback.build_client_finish().unwrap();
        let outcome = fallback.finish().unwrap();
        finish_xx(pending, &finish, &outcome);
    }
}
