//! The keys a client device uploaded, from which fake contacts start sessions to it.
//!
//! The client uploads at login with `<iq xmlns="encrypt" type="set">` carrying
//! `<registration>` (4 bytes BE), `<type>` (`[5]`), `<identity>` (32 bytes),
//! `<list><key><id/><value/></key>…</list>` and `<skey><id/><value/><signature/></skey>`
//! (ids 3 bytes BE) — built by `PreKeyUtils::build_upload_prekeys_request`
//! (`wacore/src/prekeys.rs:139`) and, on the wire, by `PreKeyUploadSpec::encode_iq_direct`
//! (`wacore/src/iq/prekeys.rs:309-395`); the signed key rotates with
//! `<rotate><skey/></rotate>` (`wacore/src/iq/prekeys.rs:497-548`). The `<skey>` and `<key>`
//! children are parsed with the library's own `SignedPreKeyNode` / `OneTimePreKeyNode`.
//!
//! The server keeps one `ClientKeys` per client device and hands every fake contact the next
//! unused one-time prekey, like the real server: each is given out once, in upload order.

use std::collections::VecDeque;

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use wacore::iq::prekeys::{OneTimePreKeyNode, SignedPreKeyNode};
use wacore::protocol::ProtocolNode as _;
use wacore_binary::{Node, NodeRef};
use wacore_libsignal::protocol::{DeviceId, IdentityKey, PreKeyBundle, PublicKey};

/// The key type byte of `<type>`: Curve25519, the only one WhatsApp uses.
const KEY_TYPE_DJB: u8 = 5;

/// One client device's uploaded Signal keys.
#[derive(Debug, Clone)]
pub struct ClientKeys {
    pub registration_id: u32,
    pub identity_key: IdentityKey,
    pub signed_pre_key_id: u32,
    pub signed_pre_key: PublicKey,
    pub signed_pre_key_signature: Vec<u8>,
    /// Not yet handed out, in upload order.
    one_time: VecDeque<(u32, PublicKey)>,
}

impl ClientKeys {
    /// Parses the client's upload iq (the `<iq>` itself, or any node whose children are
    /// `<registration>`, `<type>`, `<identity>`, `<list>`, `<skey>`).
    pub fn from_upload(node: &Node) -> Result<Self> {
        Self::from_upload_ref(&node.as_node_ref())
    }

    /// [`Self::from_upload`] on a borrowed node, as the decoder hands it out.
    pub fn from_upload_ref(node: &NodeRef<'_>) -> Result<Self> {
        let registration = child_bytes(node, "registration")?;
        let registration_id = u32::from_be_bytes(
            registration.try_into().map_err(|_| anyhow!("<registration> is not 4 bytes"))?,
        );
        // `<type>` is always sent; absent is tolerated, any other key type is not.
        if let Some(key_type) = node.get_optional_child("type") {
            ensure!(
                key_type.content_bytes() == Some(&[KEY_TYPE_DJB][..]),
                "unsupported key <type>"
            );
        }
        let identity_key = IdentityKey::new(djb_key(child_bytes(node, "identity")?)?);

        let skey =
            node.get_optional_child("skey").ok_or_else(|| anyhow!("upload without <skey>"))?;
        let skey = SignedPreKeyNode::try_from_node_ref(skey)?;
        let signed_pre_key = djb_key(&skey.public_bytes)?;
        // The same check `process_prekey_bundle` makes, done here so a bad upload fails at
        // login rather than at the first inbound message.
        ensure!(
            identity_key
                .public_key()
                .verify_signature(&signed_pre_key.serialize(), &skey.signature),
            "signed prekey signature does not verify against the uploaded identity"
        );

        let mut one_time = VecDeque::new();
        if let Some(list) = node.get_optional_child("list") {
            for key in list.get_children_by_tag("key") {
                let key = OneTimePreKeyNode::try_from_node_ref(key)?;
                one_time.push_back((key.id, djb_key(&key.public_bytes)?));
            }
        }

        Ok(Self {
            registration_id,
            identity_key,
            signed_pre_key_id: skey.id,
            signed_pre_key,
            signed_pre_key_signature: skey.signature,
            one_time,
        })
    }

    /// The keys of a fetched bundle, as if that device had uploaded them (with its one
    /// one-time prekey, if any): lets one fake party start a session to another.
    pub fn from_bundle(bundle: &PreKeyBundle) -> Result<Self> {
        let mut one_time = VecDeque::new();
        if let (Some(id), Some(key)) = (bundle.pre_key_id()?, bundle.pre_key_public()?) {
            one_time.push_back((u32::from(id), key));
        }
        Ok(Self {
            registration_id: bundle.registration_id()?,
            identity_key: *bundle.identity_key()?,
            signed_pre_key_id: bundle.signed_pre_key_id()?.into(),
            signed_pre_key: bundle.signed_pre_key_public()?,
            signed_pre_key_signature: bundle.signed_pre_key_signature()?.to_vec(),
            one_time,
        })
    }

    /// Takes a later upload of the same device: a refill (same identity) appends its new
    /// one-time keys behind the unused ones and adopts its signed key; an upload with another
    /// identity (the device was reset) replaces everything.
    pub fn merge_upload(&mut self, node: &NodeRef<'_>) -> Result<()> {
        let newer = Self::from_upload_ref(node)?;
        if newer.identity_key != self.identity_key {
            *self = newer;
            return Ok(());
        }
        self.registration_id = newer.registration_id;
        self.signed_pre_key_id = newer.signed_pre_key_id;
        self.signed_pre_key = newer.signed_pre_key;
        self.signed_pre_key_signature = newer.signed_pre_key_signature;
        for key in newer.one_time {
            if !self.one_time.iter().any(|(id, _)| *id == key.0) {
                self.one_time.push_back(key);
            }
        }
        Ok(())
    }

    /// Applies a signed-prekey rotation, `<iq xmlns="encrypt" type="set"><rotate><skey/>…`
    /// (pass the `<iq>` or the `<rotate>`).
    pub fn apply_rotate(&mut self, node: &NodeRef<'_>) -> Result<()> {
        let rotate = if node.tag == "rotate" {
            node
        } else {
            node.get_optional_child("rotate")
                .ok_or_else(|| anyhow!("no <rotate> in the rotation iq"))?
        };
        let skey =
            rotate.get_optional_child("skey").ok_or_else(|| anyhow!("<rotate> without <skey>"))?;
        let skey = SignedPreKeyNode::try_from_node_ref(skey)?;
        let public = djb_key(&skey.public_bytes)?;
        ensure!(
            self.identity_key.public_key().verify_signature(&public.serialize(), &skey.signature),
            "rotated signed prekey signature does not verify"
        );
        self.signed_pre_key_id = skey.id;
        self.signed_pre_key = public;
        self.signed_pre_key_signature = skey.signature;
        Ok(())
    }

    /// How many one-time prekeys are still unused.
    pub fn one_time_prekeys_left(&self) -> usize {
        self.one_time.len()
    }

    /// The bundle for the next session to this device, consuming its next one-time prekey.
    /// When they have run out the bundle has none, which Signal allows (the real server does
    /// the same until the client refills).
    pub fn take_bundle(&mut self, device_id: u16) -> Result<PreKeyBundle> {
        let one_time = self.one_time.pop_front();
        PreKeyBundle::new(
            self.registration_id,
            DeviceId::from(u32::from(device_id)),
            one_time.map(|(id, key)| (id.into(), key)),
            self.signed_pre_key_id.into(),
            self.signed_pre_key,
            self.signed_pre_key_signature.clone(),
            self.identity_key,
        )
        .context("building the client's prekey bundle")
    }
}

fn child_bytes<'a>(node: &'a NodeRef<'_>, tag: &str) -> Result<&'a [u8]> {
    match node.get_optional_child(tag) {
        Some(child) => child.content_bytes().ok_or_else(|| anyhow!("<{tag}> carries no bytes")),
        None => bail!("upload without <{tag}>"),
    }
}

/// The wire carries raw 32-byte Curve25519 keys (no 0x05 prefix).
fn djb_key(bytes: &[u8]) -> Result<PublicKey> {
    ensure!(bytes.len() == 32, "key is {} bytes, not 32", bytes.len());
    Ok(PublicKey::from_djb_public_key_bytes(bytes)?)
}
