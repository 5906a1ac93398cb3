//! QR pairing, the server's half and the fake phone's half.
//!
//! The server hands a fresh client `<pair-device>` with refs; the client renders
//! `ref,noise-pub,identity-pub,adv-secret,client-type` (`wacore/src/pair.rs:57-69`). The fake
//! phone ([`scan`]) reads that string, signs an ADV device identity with its own account key
//! (XEdDSA over `[6,0] ‖ details ‖ companion identity`, then HMAC-SHA256 keyed with the
//! adv-secret — what `wacore/src/pair.rs:165-311` checks), sends `<pair-success>`, waits for
//! `<pair-device-sign>` and ends the socket with `<stream:error code="515"/>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use buffa::Message;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::oneshot;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::KeyPair;
use waproto::whatsapp as wa;

use crate::noise::rng;
use crate::server::{ConnHandle, Device, Paired, Phone, WireServer};

/// How many refs one `<pair-device>` carries (the real server sends six).
const REFS: usize = 6;

/// How long the phone waits for the client's `<pair-device-sign>`.
const SIGN_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn server_jid() -> Jid {
    Jid::new("", wacore_binary::Server::Pn)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_ref() -> String {
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill(&mut bytes);
    format!("2@{}", B64.encode(bytes))
}

/// Fifteen random digits, not starting with 0.
pub(crate) fn random_lid() -> String {
    let mut r = rand::thread_rng();
    let mut s = r.gen_range(1..=9).to_string();
    for _ in 0..14 {
        s.push(char::from(b'0' + r.gen_range(0..=9u8)));
    }
    s
}

/// Registers the refs of a connection waiting to be paired and builds its `<pair-device>`.
pub(crate) fn pair_device(server: &WireServer, conn: &ConnHandle) -> Node {
    let refs: Vec<String> = (0..REFS).map(|_| random_ref()).collect();
    let mut st = server.state();
    for r in &refs {
        st.pairing.insert(r.clone(), conn.clone());
    }
    let id = format!("pair-{}", st.next_id());
    NodeBuilder::new("iq")
        .attr("from", server_jid())
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device")
            .children(refs.into_iter().map(|r| NodeBuilder::new("ref").bytes(r).build()))
            .build()])
        .build()
}

/// The parts of a QR string the phone needs.
struct Qr {
    reference: String,
    identity_pub: Vec<u8>,
    adv_secret: Vec<u8>,
}

fn parse_qr(qr: &str) -> Result<Qr> {
    let parts: Vec<&str> = qr.split(',').collect();
    if parts.len() < 4 {
        bail!("QR string has {} parts, expected ref,noise,identity,adv[,type]", parts.len());
    }
    Ok(Qr {
        reference: parts[0].to_string(),
        identity_pub: B64.decode(parts[2]).context("QR identity key")?,
        adv_secret: B64.decode(parts[3]).context("QR adv secret")?,
    })
}

/// The `<device-identity>` blob: an HMAC container around an account-signed identity.
fn device_identity(
    account: &KeyPair,
    companion_identity: &[u8],
    adv_secret: &[u8],
    key_index: u32,
) -> Result<Vec<u8>> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(rand::thread_rng().r#gen()),
        timestamp: Some(now_secs()),
        key_index: Some(key_index),
        ..Default::default()
    }
    .encode_to_vec();
    let mut msg = vec![6u8, 0];
    msg.extend_from_slice(&details);
    msg.extend_from_slice(companion_identity);
    let signature = account
        .private_key
        .calculate_signature(&msg, &mut rng())
        .map_err(|e| anyhow!("account signature: {e}"))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.public_key.public_key_bytes().to_vec()),
        account_signature: Some(signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(adv_secret)
        .map_err(|e| anyhow!("adv secret: {e}"))?;
    mac.update(&signed);
    let hmac = mac.finalize().into_bytes().to_vec();
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac),
        ..Default::default()
    }
    .encode_to_vec())
}

pub(crate) async fn scan(server: &WireServer, qr_code: &str, phone: &str) -> Result<Paired> {
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        bail!("phone must be digits, got {phone:?}");
    }
    let qr = parse_qr(qr_code)?;
    let (conn, id, rx, jid, lid, identity) = {
        let mut st = server.state();
        let conn = st
            .pairing
            .get(&qr.reference)
            .cloned()
            .ok_or_else(|| anyhow!("no connection is showing QR ref {}", qr.reference))?;
        let p = st.phones.entry(phone.to_string()).or_insert_with(Phone::fresh);
        let device = p.next_device;
        p.next_device += 1;
        let jid = format!("{phone}:{device}@s.whatsapp.net");
        let lid = format!("{}:{device}@lid", p.lid);
        let identity = device_identity(&p.account_key, &qr.identity_pub, &qr.adv_secret, device)?;
        let id = format!("pair-{}", st.next_id());
        let (tx, rx) = oneshot::channel();
        st.waiters.insert(id.clone(), tx);
        (conn, id, rx, jid, lid, identity)
    };
    let success = NodeBuilder::new("iq")
        .attr("from", server_jid())
        .attr("type", "set")
        .attr("id", id.clone())
        .attr("xmlns", "md")
        .attr("t", now_secs().to_string())
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(identity).build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
                // Becomes the device's push name. Without one, every login waits for the
                // push name from app-state sync (a 10 s key-share grace included).
                NodeBuilder::new("biz").attr("name", format!("Fake {phone}")).build(),
                NodeBuilder::new("device")
                    .attr("jid", jid.parse::<Jid>().map_err(|e| anyhow!("{jid}: {e}"))?)
                    .attr("lid", lid.parse::<Jid>().map_err(|e| anyhow!("{lid}: {e}"))?)
                    .build(),
            ])
            .build()])
        .build();
    conn.send(success);
    let answer = tokio::time::timeout(SIGN_TIMEOUT, rx).await;
    server.state().waiters.remove(&id);
    let answer = answer
        .map_err(|_| anyhow!("no pair-device-sign within {SIGN_TIMEOUT:?}"))?
        .map_err(|_| anyhow!("the pairing connection closed"))?;
    if answer.get_optional_child("pair-device-sign").is_none() {
        bail!("the client refused the pairing: {answer:?}");
    }
    {
        let mut st = server.state();
        st.pairing.retain(|_, c| c.id != conn.id);
        st.devices.insert(
            jid.clone(),
            Device {
                phone: phone.to_string(),
                lid_jid: lid.clone(),
                logged_out: false,
                prekey_upload: None,
                chat_states: Vec::new(),
                app_state: Vec::new(),
            },
        );
    }
    conn.send(NodeBuilder::new("stream:error").attr("code", "515").build());
    conn.close();
    Ok(Paired { jid, lid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_libsignal::protocol::PublicKey;

    #[test]
    fn the_identity_passes_the_clients_checks() {
        let companion = KeyPair::generate(&mut rng());
        let noise = KeyPair::generate(&mut rng());
        let adv = [7u8; 32];
        let qr = wacore::pair::PairUtils::make_qr_data(
            &wacore::pair::DeviceState {
                identity_key: companion.clone(),
                noise_key: noise,
                adv_secret_key: adv,
            },
            "2@ref",
            wacore::companion_reg::CompanionWebClientType::Chrome,
        );
        let parsed = parse_qr(&qr).unwrap();
        assert_eq!(parsed.reference, "2@ref");
        let account = KeyPair::generate(&mut rng());
        let blob = device_identity(&account, &parsed.identity_pub, &parsed.adv_secret, 3).unwrap();
        let state = wacore::pair::DeviceState {
            identity_key: companion,
            noise_key: KeyPair::generate(&mut rng()),
            adv_secret_key: adv,
        };
        let (_, key_index) = wacore::pair::PairUtils::do_pair_crypto(&state, &blob).unwrap();
        assert_eq!(key_index, 3);
        // Sanity: the account key round-trips as a DJB key.
        PublicKey::from_djb_public_key_bytes(account.public_key.public_key_bytes()).unwrap();
    }

    #[test]
    fn lids_have_fifteen_digits() {
        let l = random_lid();
        assert_eq!(l.len(), 15);
        assert!(l.bytes().all(|b| b.is_ascii_digit()));
    }
}
