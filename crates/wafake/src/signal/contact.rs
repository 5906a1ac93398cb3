//! A fake WhatsApp user: its Signal keys, what the server serves when the client fetches them,
//! and decrypting/encrypting the messages between it and a client device.
//!
//! Wire shapes and the library code each step follows:
//! - prekey fetch answer: `<iq type="result"><list><user jid=…>` with `<registration>`,
//!   `<type>`, `<identity>`, `<skey>`, optional `<key>`, built with the library's server-side
//!   builder `PreKeyBundleUserNode::from_bundle` + `into_node` (`wacore/src/iq/prekeys.rs:748`,
//!   `:799`) and parsed by the client in `PreKeyUtils::parse_prekeys_response`
//!   (`wacore/src/prekeys.rs:196-390`, which reads `<list>` then each `<user>`);
//! - outbound `<enc v="2" type="pkmsg"|"msg">` as the client builds it
//!   (`wacore/src/send/encrypt.rs:325-344`, `send/peer.rs:59-67`): plaintext =
//!   `MessageUtils::encode_and_pad` (`wacore/src/messages.rs:161`, random 1..=16 bytes of
//!   PKCS#7-style padding), then `message_encrypt`; decrypted with `message_decrypt`
//!   (`wacore-libsignal/src/protocol/session_cipher.rs:412`) and unpadded/decoded with
//!   `wacore::messages::decode_plaintext` (`messages.rs:542`) using the `v` attribute, the way
//!   the receive path does (`wacore/src/message_processing.rs:152`, default 2);
//! - inbound: `process_prekey_bundle` (`wacore-libsignal/src/protocol/session.rs:149`) with a
//!   bundle from [`ClientKeys`], then `message_encrypt` (`session_cipher.rs:258`) of
//!   `encode_and_pad`, typed with `wacore::send::extract_ciphertext`.
//!
//! - groups: a client's group send (`wacore/src/send/group.rs`) carries, per recipient
//!   device, a pairwise `<enc>` whose message is only a `sender_key_distribution_message`
//!   (processed with `process_sender_key_distribution_message`), and one
//!   `<enc type="skmsg">` for everyone (`group_decrypt`); later sends carry only the skmsg.
//!   A contact's own group messages go the same way ([`FakeContact::encrypt_group_to`]):
//!   the SKDM pairwise the first time per (group, device), then the skmsg. Sender keys are
//!   named with wacore's `make_sender_key_name(group, sender address)`.
//!
//! Signal addresses are derived from JIDs with wacore's `JidExt::to_protocol_address`, the
//! mapping the client uses, so the session the client opened by sending (pkmsg) is the one
//! the contact answers on.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use anyhow::{anyhow, bail, Context as _, Result};
use rand10::RngExt as _;
use wacore::iq::prekeys::PreKeyBundleUserNode;
use wacore::libsignal::protocol::{
    create_sender_key_distribution_message, group_decrypt, group_encrypt, message_decrypt,
    message_encrypt, process_prekey_bundle, process_sender_key_distribution_message,
    CiphertextMessage, DeviceId, GenericSignedPreKey as _, IdentityKey, IdentityKeyPair,
    PreKeyBundle, PreKeyRecord, PreKeySignalMessage, PublicKey, SenderKeyDistributionMessage,
    SenderKeyName, SignalMessage, SignedPreKeyRecord, Timestamp, UsePQRatchet,
};
use wacore::messages::{decode_plaintext, MessageUtils};
use wacore::protocol::ProtocolNode as _;
use wacore::types::jid::{make_sender_key_name, JidExt as _};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeRef};
use waproto::whatsapp as wa;

use super::client_keys::ClientKeys;
use super::fetch::prekey_fetch_result_node;
use super::stores::MemStores;

/// How many one-time prekeys a contact made with [`FakeContact::new`] has.
pub const DEFAULT_ONE_TIME_PREKEYS: u32 = 8;

/// The `v` of every `<enc>` (`wacore/src/send.rs:28`): padding version 2.
pub const ENC_VERSION: &str = "2";

/// The signed prekey's id; a fake contact never rotates it.
const SIGNED_PRE_KEY_ID: u32 = 1;

/// A ciphertext for one device, typed as the `<enc type>` it travels in.
#[derive(Debug, Clone)]
pub struct Encrypted {
    /// `"pkmsg"` (starts a session) or `"msg"`.
    pub enc_type: &'static str,
    pub ciphertext: Vec<u8>,
}

impl Encrypted {
    /// `<enc v="2" type=…>ciphertext</enc>`, the child of an inbound `<message>`.
    pub fn to_enc_node(&self) -> Node {
        NodeBuilder::new("enc")
            .attr("v", ENC_VERSION)
            .attr("type", self.enc_type)
            .bytes(self.ciphertext.clone())
            .build()
    }
}

/// A fake WhatsApp user (`<digits>@s.whatsapp.net`, device 0) with its own Signal state.
pub struct FakeContact {
    jid: Jid,
    stores: MemStores,
    signed_pre_key: PublicKey,
    signed_pre_key_signature: Vec<u8>,
    /// One-time prekeys not yet served to a fetch, in id order. A served key stays in the
    /// prekey store until the pkmsg that used it arrives.
    unserved: VecDeque<(u32, PublicKey)>,
    /// (group JID, client device JID, the contact's JID as the device sees it) triples this
    /// contact has sent its sender key to.
    skdm_sent: HashSet<(String, String, String)>,
}

/// A contact's message to a group, for one client device: the pairwise `<enc>` carrying the
/// contact's sender key (the first time per group and device only) and the `skmsg`.
#[derive(Debug, Clone)]
pub struct GroupEncrypted {
    pub skdm: Option<Encrypted>,
    pub skmsg: Vec<u8>,
}

impl GroupEncrypted {
    /// The `<enc>` children of the `<message>`: the pairwise one first (the client must have
    /// the sender key before the skmsg), then `<enc v="2" type="skmsg">`.
    pub fn to_enc_nodes(&self) -> Vec<Node> {
        let skmsg = NodeBuilder::new("enc")
            .attr("v", ENC_VERSION)
            .attr("type", "skmsg")
            .bytes(self.skmsg.clone())
            .build();
        self.skdm.iter().map(Encrypted::to_enc_node).chain([skmsg]).collect()
    }
}

impl FakeContact {
    /// A contact with [`DEFAULT_ONE_TIME_PREKEYS`] one-time prekeys.
    pub fn new(phone: &str) -> Result<Self> {
        Self::with_one_time_prekeys(phone, DEFAULT_ONE_TIME_PREKEYS)
    }

    /// A contact with `count` one-time prekeys (ids 1..=count); fetches past them get a
    /// bundle without one, which Signal allows.
    pub fn with_one_time_prekeys(phone: &str, count: u32) -> Result<Self> {
        if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
            bail!("a fake contact's phone must be digits, got {phone:?}");
        }
        let mut rng = signal_rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        // 14 bits, like the registration ids real clients generate.
        let registration_id = rng.random_range(1..=16380);
        let mut stores = MemStores::new(identity.clone(), registration_id);

        let signed = wacore::crypto::generate_curve_key_pair();
        let signature = identity
            .private_key()
            .calculate_signature(&signed.public_key.serialize(), &mut rng)?
            .to_vec();
        stores.signed_pre_keys.insert(
            SIGNED_PRE_KEY_ID.into(),
            SignedPreKeyRecord::new(
                SIGNED_PRE_KEY_ID.into(),
                Timestamp::from_epoch_millis(0),
                &signed,
                &signature,
            ),
        );

        let mut unserved = VecDeque::with_capacity(count as usize);
        for id in 1..=count {
            let pair = wacore::crypto::generate_curve_key_pair();
            stores.pre_keys.insert(id.into(), PreKeyRecord::new(id.into(), &pair));
            unserved.push_back((id, pair.public_key));
        }

        Ok(Self {
            jid: Jid::pn(phone),
            stores,
            signed_pre_key: signed.public_key,
            signed_pre_key_signature: signature,
            unserved,
            skdm_sent: HashSet::new(),
        })
    }

    /// `<digits>@s.whatsapp.net`, device 0.
    pub fn jid(&self) -> &Jid {
        &self.jid
    }

    pub fn registration_id(&self) -> u32 {
        self.stores.identity.registration_id()
    }

    pub fn identity_key(&self) -> IdentityKey {
        *self.stores.identity.identity_key_pair().identity_key()
    }

    /// One-time prekeys no fetch has been given yet.
    pub fn one_time_prekeys_unserved(&self) -> usize {
        self.unserved.len()
    }

    /// Whether this contact has a session with that device (of the client).
    pub fn has_session_with(&self, device: &Jid) -> bool {
        self.stores.sessions.contains(&device.to_protocol_address())
    }

    /// The bundle for the next fetch, handing out the next one-time prekey (each once).
    pub fn next_prekey_bundle(&mut self) -> Result<PreKeyBundle> {
        let one_time = self.unserved.pop_front();
        Ok(PreKeyBundle::new(
            self.registration_id(),
            DeviceId::from(u32::from(self.jid.device)),
            one_time.map(|(id, key)| (id.into(), key)),
            SIGNED_PRE_KEY_ID.into(),
            self.signed_pre_key,
            self.signed_pre_key_signature.clone(),
            self.identity_key(),
        )?)
    }

    /// The `<user jid=… type="result">` child of a fetch answer, for a fetch that may name
    /// several users (compose with [`prekey_fetch_result_node`]). `requested` is echoed as
    /// the client wrote it, since the client files the bundle under that JID.
    pub fn prekey_user_node(&mut self, requested: &Jid) -> Result<Node> {
        let bundle = self.next_prekey_bundle()?;
        // Device 0 carries no `<device-identity>` (only companions do, `wacore/src/prekeys.rs:346-387`).
        Ok(PreKeyBundleUserNode::from_bundle(requested.clone(), &bundle, None)?.into_node())
    }

    /// The whole answer to `<iq xmlns="encrypt" type="get" id=…><key><user jid=this/></key>`.
    pub fn prekey_fetch_result(&mut self, request_id: &str) -> Result<Node> {
        let jid = self.jid.clone();
        Ok(prekey_fetch_result_node(request_id, [self.prekey_user_node(&jid)?]))
    }

    /// Decrypts an `<enc>` node the client addressed to this contact from `sender` (the
    /// client's JID with its device, as the server knows it: the address of the session).
    pub fn decrypt_enc(&mut self, sender: &Jid, enc: &NodeRef<'_>) -> Result<wa::Message> {
        let mut attrs = enc.attrs();
        let enc_type =
            attrs.optional_string("type").ok_or_else(|| anyhow!("<enc> without type"))?.to_string();
        let version = attrs.optional_u64("v").unwrap_or(2);
        let version = u8::try_from(version).map_err(|_| anyhow!("<enc v={version}>"))?;
        let ciphertext = enc.content_bytes().ok_or_else(|| anyhow!("<enc> without bytes"))?;
        self.decrypt(sender, &enc_type, ciphertext, version)
    }

    /// Decrypts the part of an outbound `<message>` stanza addressed to this contact. The
    /// client sends a DM as `<participants><to jid=DEVICE><enc/></to>…</participants>`, one
    /// `<to>` per recipient device plus its own other devices (`wacore/src/send/dm.rs:220-236`,
    /// `send/encrypt.rs:325-344`); a bare `<enc>` child is accepted too. `None` when no part
    /// is for this contact (e.g. only the client's own devices).
    pub fn decrypt_stanza(
        &mut self,
        sender: &Jid,
        message: &NodeRef<'_>,
    ) -> Result<Option<wa::Message>> {
        let mut enc = None;
        if let Some(participants) = message.get_optional_child("participants") {
            for to in participants.get_children_by_tag("to") {
                let addressed = to.attrs().optional_jid("jid");
                if addressed.is_some_and(|jid| self.is_me(&jid)) {
                    enc = to.get_optional_child("enc");
                    break;
                }
            }
        } else {
            enc = message.get_optional_child("enc");
        }
        match enc {
            Some(enc) => self.decrypt_enc(sender, enc).map(Some),
            None => Ok(None),
        }
    }

    /// This contact's device, however written (`N@s.whatsapp.net`, `N:0@s.whatsapp.net`).
    fn is_me(&self, jid: &Jid) -> bool {
        jid.server == self.jid.server
            && jid.user_base() == self.jid.user.as_str()
            && jid.device == 0
    }

    /// Decrypts one ciphertext (`enc_type` `"pkmsg"` or `"msg"`, `padding_version` the `v`
    /// attribute), strips WhatsApp's padding and decodes the `Message`.
    pub fn decrypt(
        &mut self,
        sender: &Jid,
        enc_type: &str,
        ciphertext: &[u8],
        padding_version: u8,
    ) -> Result<wa::Message> {
        let message = match enc_type {
            "pkmsg" => {
                CiphertextMessage::PreKeySignalMessage(PreKeySignalMessage::try_from(ciphertext)?)
            }
            "msg" => CiphertextMessage::SignalMessage(SignalMessage::try_from(ciphertext)?),
            other => bail!("cannot decrypt <enc type={other:?}> (not a pairwise message)"),
        };
        let address = sender.to_protocol_address();
        let stores = &mut self.stores;
        let result = run_ready(message_decrypt(
            &message,
            &address,
            &mut stores.sessions,
            &mut stores.identity,
            &mut stores.pre_keys,
            &stores.signed_pre_keys,
            &mut signal_rng(),
            UsePQRatchet::No,
        ))?
        .with_context(|| format!("decrypting {enc_type} from {sender}"))?;
        // libsignal leaves deleting the used one-time prekey to the caller; with nothing to
        // persist, now is the time: a second pkmsg naming it must fail, as on a real phone.
        if let Some(used) = result.consumed_prekey_id {
            stores.pre_keys.remove(used);
        }
        decode_plaintext(&result.plaintext, padding_version)
    }

    /// Encrypts `message` from this contact to one client device. Without a session it starts
    /// one from the device's uploaded keys (taking its next one-time prekey); the result is a
    /// `pkmsg` until the client has answered on the session, then `msg` (Signal's rule). If
    /// the client opened the session (it sent first), it is `msg` from the start.
    pub fn encrypt_to(
        &mut self,
        client: &mut ClientKeys,
        client_device: &Jid,
        message: &wa::Message,
    ) -> Result<Encrypted> {
        let address = client_device.to_protocol_address();
        let stores = &mut self.stores;
        if !stores.sessions.contains(&address) {
            let bundle = client.take_bundle(client_device.device)?;
            run_ready(process_prekey_bundle(
                &address,
                &mut stores.sessions,
                &mut stores.identity,
                &bundle,
                &mut signal_rng(),
                UsePQRatchet::No,
            ))?
            .with_context(|| format!("starting a session to {client_device}"))?;
        }
        let plaintext = MessageUtils::encode_and_pad(message);
        let encrypted = run_ready(message_encrypt(
            &plaintext,
            &address,
            &mut stores.sessions,
            &mut stores.identity,
        ))?
        .with_context(|| format!("encrypting to {client_device}"))?;
        let (enc_type, _, ciphertext) = wacore::send::extract_ciphertext(encrypted)
            .ok_or_else(|| anyhow!("libsignal produced a non-pairwise message"))?;
        Ok(Encrypted { enc_type, ciphertext: ciphertext.into() })
    }
}

impl FakeContact {
    /// The name of `sender`'s sender key in `group`, as this contact files it.
    fn sender_key_name(group: &Jid, sender: &Jid) -> SenderKeyName {
        make_sender_key_name(&group.to_non_ad(), &sender.to_protocol_address())
    }

    /// Whether this contact holds a sender key of `sender` (a client device) in `group`.
    pub fn has_sender_key(&self, group: &Jid, sender: &Jid) -> bool {
        self.stores.sender_keys.contains(&Self::sender_key_name(group, sender))
    }

    /// Takes the pairwise `<enc>` of a group send addressed to this contact: decrypts it and,
    /// if it carries a `sender_key_distribution_message` (it always does from whatsapp-rust),
    /// stores `sender`'s sender key for `group`. Returns the decrypted message.
    pub fn accept_group_enc(
        &mut self,
        sender: &Jid,
        group: &Jid,
        enc: &NodeRef<'_>,
    ) -> Result<wa::Message> {
        let message = self.decrypt_enc(sender, enc)?;
        if let Some(bytes) = message
            .sender_key_distribution_message
            .as_option()
            .and_then(|d| d.axolotl_sender_key_distribution_message.as_deref())
        {
            self.process_skdm(sender, group, bytes)?;
        }
        Ok(message)
    }

    /// Stores `sender`'s sender key for `group` from a serialized
    /// `SenderKeyDistributionMessage`.
    pub fn process_skdm(&mut self, sender: &Jid, group: &Jid, skdm: &[u8]) -> Result<()> {
        let skdm = SenderKeyDistributionMessage::try_from(skdm)
            .with_context(|| format!("a bad sender key distribution from {sender}"))?;
        let name = Self::sender_key_name(group, sender);
        run_ready(process_sender_key_distribution_message(
            &name,
            &skdm,
            &mut self.stores.sender_keys,
        ))?
        .with_context(|| format!("storing the sender key of {sender} in {group}"))
    }

    /// Decrypts a `skmsg` that `sender` (a client device) sent to `group`, with the sender
    /// key it distributed earlier, and decodes the `Message` (`padding_version` the `v`).
    pub fn decrypt_group(
        &mut self,
        sender: &Jid,
        group: &Jid,
        skmsg: &[u8],
        padding_version: u8,
    ) -> Result<wa::Message> {
        let name = Self::sender_key_name(group, sender);
        let plaintext = run_ready(group_decrypt(skmsg, &mut self.stores.sender_keys, &name))?
            .with_context(|| format!("decrypting the skmsg of {sender} in {group}"))?;
        decode_plaintext(&plaintext, padding_version)
    }

    /// Encrypts `message` from this contact to `group`, for one client device: the skmsg
    /// under the contact's sender key for the group (made on first use), and, the first time
    /// for this group and device, the SKDM wrapped in a `Message` and encrypted pairwise
    /// (as [`FakeContact::encrypt_to`]). `seen_as` is the `participant` the stanza names
    /// (the phone JID, or the contact's LID): the client files sender keys under it, so a
    /// new one gets the SKDM again.
    pub fn encrypt_group_to(
        &mut self,
        client: &mut ClientKeys,
        client_device: &Jid,
        group: &Jid,
        seen_as: &Jid,
        message: &wa::Message,
    ) -> Result<GroupEncrypted> {
        let group = group.to_non_ad();
        let name = Self::sender_key_name(&group, &self.jid.clone());
        let skdm = run_ready(create_sender_key_distribution_message(
            &name,
            &mut self.stores.sender_keys,
            &mut signal_rng(),
        ))?
        .with_context(|| format!("making {}'s sender key for {group}", self.jid))?;
        let key = (group.to_string(), client_device.to_string(), seen_as.to_non_ad().to_string());
        let skdm = if self.skdm_sent.contains(&key) {
            None
        } else {
            let wrapper = wa::Message {
                sender_key_distribution_message: buffa::MessageField::some(
                    wa::message::SenderKeyDistributionMessage {
                        group_id: Some(group.to_string()),
                        axolotl_sender_key_distribution_message: Some(skdm.serialized().to_vec()),
                    },
                ),
                ..Default::default()
            };
            Some(self.encrypt_to(client, client_device, &wrapper)?)
        };
        let plaintext = MessageUtils::encode_and_pad(message);
        let skmsg = run_ready(group_encrypt(
            &mut self.stores.sender_keys,
            &name,
            &plaintext,
            &mut signal_rng(),
        ))?
        .with_context(|| format!("encrypting {}'s message to {group}", self.jid))?;
        // Only now: a failure above leaves the next attempt to send the SKDM again.
        self.skdm_sent.insert(key);
        Ok(GroupEncrypted { skdm, skmsg: skmsg.serialized().to_vec() })
    }
}

/// Runs a libsignal operation over the in-memory stores to completion. Those stores answer
/// with ready futures and libsignal awaits nothing else, so one poll finishes it; this keeps
/// the API synchronous, as the server's hooks are.
pub(crate) fn run_ready<F: Future>(future: F) -> Result<F::Output> {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => bail!("a Signal store operation did not complete at once"),
    }
}

/// The RNG libsignal's generic functions take (rand 0.10's traits; `StdRng` is `Send`, so
/// the futures that hold it are too).
fn signal_rng() -> rand10::rngs::StdRng {
    rand10::make_rng()
}
