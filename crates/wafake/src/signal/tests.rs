//! The fake contacts against each other and against the client library's own code paths:
//! the prekey-fetch parser, the upload builder, the send-side padding and `<enc>` building.

use std::collections::HashMap;

use wacore::iq::prekeys::PreKeyUploadSpec;
use wacore::iq::spec::IqSpec as _;
use wacore::libsignal::protocol::{
    message_decrypt, message_encrypt, process_prekey_bundle, CiphertextMessage,
    GenericSignedPreKey as _, IdentityKeyPair, KeyPair, PreKeyRecord, PreKeySignalMessage,
    SignalMessage, SignedPreKeyRecord, Timestamp, UsePQRatchet,
};
use wacore::messages::{decode_plaintext, MessageUtils};
use wacore::prekeys::PreKeyUtils;
use wacore::types::jid::JidExt as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{marshal, marshal::unmarshal_ref, Jid, Node, NodeRef};
use waproto::whatsapp as wa;

use super::contact::run_ready;
use super::stores::MemStores;
use super::{ClientKeys, Encrypted, FakeContact};

fn rng() -> rand10::rngs::StdRng {
    rand10::make_rng()
}

fn text(body: &str) -> wa::Message {
    wa::Message { conversation: Some(body.to_string()), ..Default::default() }
}

fn location(lat: f64, lon: f64) -> wa::Message {
    wa::Message {
        location_message: buffa::MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(lat),
            degrees_longitude: Some(lon),
            name: Some("Here".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Through the binary codec, as a node reaches the other side of the socket.
fn over_the_wire(node: &Node) -> Vec<u8> {
    marshal(node).expect("marshal")
}

fn decoded(bytes: &[u8]) -> NodeRef<'_> {
    // `marshal` writes the frame's leading flag byte; the decoder starts after it.
    unmarshal_ref(&bytes[1..]).expect("unmarshal")
}

/// What the client library makes of a fetch answer: its own parser, its own bundle.
fn client_parses_fetch(answer: &Node) -> HashMap<Jid, wacore::libsignal::protocol::PreKeyBundle> {
    let bytes = over_the_wire(answer);
    let outcome = PreKeyUtils::parse_prekeys_response(&decoded(&bytes), &HashMap::new())
        .expect("the client parses the fetch answer");
    assert!(outcome.rejected.is_empty());
    outcome.bundles
}

/// A client device's Signal state built as whatsapp-rust builds it (`Device::new`,
/// `wacore/src/store/device.rs:405-420`): identity, signed prekey 1, one-time prekeys.
struct TestClient {
    jid: Jid,
    stores: MemStores,
    signed: KeyPair,
    signature: [u8; 64],
    pre_keys: Vec<(u32, KeyPair)>,
}

impl TestClient {
    fn new(jid: Jid, pre_key_ids: impl IntoIterator<Item = u32>) -> Self {
        let identity = IdentityKeyPair::generate(&mut rng());
        let signed = wacore::crypto::generate_curve_key_pair();
        let signature = wacore::crypto::calculate_curve_signature(
            identity.private_key(),
            &signed.public_key.serialize(),
        )
        .expect("sign");
        let mut stores = MemStores::new(identity, 4242);
        stores.signed_pre_keys.insert(
            1.into(),
            SignedPreKeyRecord::new(1.into(), Timestamp::from_epoch_millis(0), &signed, &signature),
        );
        let pre_keys: Vec<_> = pre_key_ids
            .into_iter()
            .map(|id| (id, wacore::crypto::generate_curve_key_pair()))
            .collect();
        for (id, pair) in &pre_keys {
            stores.pre_keys.insert((*id).into(), PreKeyRecord::new((*id).into(), pair));
        }
        Self { jid, stores, signed, signature, pre_keys }
    }

    /// The upload iq exactly as the library puts it on the wire (`encode_iq_direct`, the
    /// path `whatsapp-rust/src/request.rs:400` takes), decoded back into a node.
    fn upload_bytes(&self) -> Vec<u8> {
        let spec = PreKeyUploadSpec::new(
            self.stores.identity.registration_id(),
            *self.stores.identity.identity_key_pair().public_key(),
            1,
            self.signed.public_key,
            self.signature.to_vec(),
            self.pre_keys.iter().map(|(id, pair)| (*id, pair.public_key)).collect(),
        );
        let mut out = Vec::new();
        assert!(spec.encode_iq_direct("upload-1", &mut out).expect("encode"));
        out
    }

    /// Receives as whatsapp-rust does (`message/receive.rs:48`): `message_decrypt`, then
    /// `decode_plaintext` with the `v` attribute. Returns the message and the prekey used.
    fn receive(&mut self, from: &Jid, enc: &Encrypted) -> (wa::Message, Option<u32>) {
        let message = match enc.enc_type {
            "pkmsg" => CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(&enc.ciphertext[..]).expect("pkmsg"),
            ),
            _ => CiphertextMessage::SignalMessage(
                SignalMessage::try_from(&enc.ciphertext[..]).expect("msg"),
            ),
        };
        let stores = &mut self.stores;
        let result = run_ready(message_decrypt(
            &message,
            &from.to_protocol_address(),
            &mut stores.sessions,
            &mut stores.identity,
            &mut stores.pre_keys,
            &stores.signed_pre_keys,
            &mut rng(),
            UsePQRatchet::No,
        ))
        .unwrap()
        .expect("the client decrypts");
        let used = result.consumed_prekey_id.map(u32::from);
        if let Some(id) = result.consumed_prekey_id {
            stores.pre_keys.remove(id);
        }
        (decode_plaintext(&result.plaintext, 2).expect("decode"), used)
    }
}

#[test]
fn two_contacts_round_trip() {
    let mut alice = FakeContact::new("15550000001").unwrap();
    let mut bob = FakeContact::with_one_time_prekeys("15550000002", 2).unwrap();

    // Alice "fetches" Bob's keys through the client's own parser.
    let bundles = client_parses_fetch(&bob.prekey_fetch_result("fetch-1").unwrap());
    let mut bob_keys = ClientKeys::from_bundle(&bundles[bob.jid()]).unwrap();
    assert_eq!(bob.one_time_prekeys_unserved(), 1);

    let first = alice.encrypt_to(&mut bob_keys, &bob.jid().clone(), &text("hi bob")).unwrap();
    assert_eq!(first.enc_type, "pkmsg");
    assert_eq!(
        bob.decrypt(alice.jid(), first.enc_type, &first.ciphertext, 2).unwrap(),
        text("hi bob")
    );
    // Until Bob answers, Alice keeps sending pkmsg (Signal's rule), and Bob reads them.
    let second =
        alice.encrypt_to(&mut bob_keys, &bob.jid().clone(), &location(52.5, 13.4)).unwrap();
    assert_eq!(second.enc_type, "pkmsg");
    assert_eq!(
        bob.decrypt(alice.jid(), "pkmsg", &second.ciphertext, 2).unwrap(),
        location(52.5, 13.4)
    );

    // Bob answers on the session Alice opened: no keys needed, plain `msg`.
    let mut alice_keys = ClientKeys::from_bundle(&alice.next_prekey_bundle().unwrap()).unwrap();
    let reply = bob.encrypt_to(&mut alice_keys, &alice.jid().clone(), &text("hi alice")).unwrap();
    assert_eq!(reply.enc_type, "msg");
    assert_eq!(alice_keys.one_time_prekeys_left(), 1, "an existing session takes no prekey");
    let reply_node = reply.to_enc_node();
    assert_eq!(alice.decrypt_enc(bob.jid(), &reply_node.as_node_ref()).unwrap(), text("hi alice"));

    // Now Alice has heard back, her messages are `msg`.
    let third = alice.encrypt_to(&mut bob_keys, &bob.jid().clone(), &text("again")).unwrap();
    assert_eq!(third.enc_type, "msg");
    assert_eq!(bob.decrypt(alice.jid(), "msg", &third.ciphertext, 2).unwrap(), text("again"));
}

#[test]
fn fetches_serve_each_one_time_prekey_once_then_none() {
    let mut contact = FakeContact::with_one_time_prekeys("15550000003", 2).unwrap();
    let ids: Vec<_> = (0..3)
        .map(|i| {
            let bundles =
                client_parses_fetch(&contact.prekey_fetch_result(&format!("f{i}")).unwrap());
            bundles[contact.jid()].pre_key_id().unwrap().map(u32::from)
        })
        .collect();
    assert_eq!(ids, [Some(1), Some(2), None]);
}

#[test]
fn fetch_answer_has_the_documented_shape() {
    let mut contact = FakeContact::new("15550000004").unwrap();
    let answer = contact.prekey_fetch_result("abc").unwrap();
    assert_eq!(answer.tag, "iq");
    let mut attrs = answer.attrs();
    assert_eq!(attrs.optional_string("type").as_deref(), Some("result"));
    assert_eq!(attrs.optional_string("id").as_deref(), Some("abc"));
    let user = &answer.get_optional_child("list").unwrap().children().unwrap()[0];
    for tag in ["registration", "type", "identity", "skey", "key"] {
        assert!(user.get_optional_child(tag).is_some(), "<user> lacks <{tag}>");
    }
}

#[test]
fn contact_decrypts_what_the_library_sends() {
    let client_jid = Jid::pn_device("15551230000", 7);
    let mut client = TestClient::new(client_jid.clone(), [1, 2, 3]);
    let mut contact = FakeContact::new("15550000005").unwrap();

    // The client's send path: parse the fetch, `process_prekey_bundle` on the contact's
    // address (`wacore/src/send/encrypt.rs:676`), then `prepare_peer_stanza`, which pads
    // with `encode_and_pad` and builds `<enc v="2" type=…>` as the DM fan-out does.
    let bundles = client_parses_fetch(&contact.prekey_fetch_result("f").unwrap());
    let contact_address = contact.jid().to_protocol_address();
    let stores = &mut client.stores;
    run_ready(process_prekey_bundle(
        &contact_address,
        &mut stores.sessions,
        &mut stores.identity,
        &bundles[contact.jid()],
        &mut rng(),
        UsePQRatchet::No,
    ))
    .unwrap()
    .unwrap();

    let sent = location(48.85, 2.35);
    let account = wa::ADVSignedDeviceIdentity::default();
    let stanza = run_ready(wacore::send::prepare_peer_stanza(
        &mut stores.sessions,
        &mut stores.identity,
        contact.jid().clone(),
        &contact_address,
        &sent,
        "MSG1",
        Some(&account),
    ))
    .unwrap()
    .unwrap();
    let bytes = over_the_wire(&stanza);
    let stanza = decoded(&bytes);
    let enc = stanza.get_optional_child("enc").expect("<enc>");
    assert_eq!(enc.attrs().optional_string("type").as_deref(), Some("pkmsg"));
    assert_eq!(contact.decrypt_enc(&client_jid, enc).unwrap(), sent);

    // The DM path's plaintext: the encoded message with the reporting `message_context_info`
    // spliced on (`wacore/src/send/dm.rs:170-185`), then padded.
    let mut with_secret = text("dm body");
    let context =
        wa::MessageContextInfo { message_secret: Some(vec![9; 32]), ..Default::default() };
    let plaintext = MessageUtils::pad_with_context_from_encoded(
        &waproto::codec::message_to_vec(&with_secret),
        Some(&context),
    );
    let ciphertext = run_ready(message_encrypt(
        &plaintext,
        &contact_address,
        &mut stores.sessions,
        &mut stores.identity,
    ))
    .unwrap()
    .unwrap();
    let (enc_type, _, ciphertext) = wacore::send::extract_ciphertext(ciphertext).unwrap();
    with_secret.message_context_info = buffa::MessageField::some(context);
    assert_eq!(contact.decrypt(&client_jid, enc_type, &ciphertext, 2).unwrap(), with_secret);

    // The contact answers on that session with `msg`, and the client reads it as it would.
    let mut keys = ClientKeys::from_upload_ref(&decoded(&client.upload_bytes()[..])).unwrap();
    let reply = contact.encrypt_to(&mut keys, &client_jid, &text("got it")).unwrap();
    assert_eq!(reply.enc_type, "msg");
    assert_eq!(client.receive(contact.jid(), &reply), (text("got it"), None));
}

#[test]
fn contacts_start_sessions_to_the_client_with_its_uploaded_prekeys_in_order() {
    let client_jid = Jid::pn_device("15551230000", 3);
    let mut client = TestClient::new(client_jid.clone(), [0x0A_0B_0C, 0x0A_0B_0D]);
    let upload = client.upload_bytes();
    let mut keys = ClientKeys::from_upload_ref(&decoded(&upload)).unwrap();

    let mut first = FakeContact::new("15550000006").unwrap();
    let mut second = FakeContact::new("15550000007").unwrap();
    let mut third = FakeContact::new("15550000008").unwrap();
    let a = first.encrypt_to(&mut keys, &client_jid, &text("one")).unwrap();
    let b = second.encrypt_to(&mut keys, &client_jid, &text("two")).unwrap();
    assert_eq!(keys.one_time_prekeys_left(), 0);
    // Out of one-time keys: the session starts from the signed prekey alone.
    let c = third.encrypt_to(&mut keys, &client_jid, &text("three")).unwrap();
    assert_eq!([a.enc_type, b.enc_type, c.enc_type], ["pkmsg"; 3]);

    assert_eq!(client.receive(first.jid(), &a), (text("one"), Some(0x0A_0B_0C)));
    assert_eq!(client.receive(second.jid(), &b), (text("two"), Some(0x0A_0B_0D)));
    assert_eq!(client.receive(third.jid(), &c), (text("three"), None));

    // A second message before the client answered is still a pkmsg, on the same session.
    let again = first.encrypt_to(&mut keys, &client_jid, &text("one more")).unwrap();
    assert_eq!(again.enc_type, "pkmsg");
    assert_eq!(client.receive(first.jid(), &again).0, text("one more"));
}

#[test]
fn upload_parses_as_the_library_builds_it() {
    let client = TestClient::new(Jid::pn_device("15551230000", 2), [1, 2, 0x01_00_00]);
    let wire = client.upload_bytes();
    let iq = decoded(&wire);
    assert_eq!(iq.attrs().optional_string("xmlns").as_deref(), Some("encrypt"));
    let keys = ClientKeys::from_upload_ref(&iq).unwrap();
    assert_eq!(keys.registration_id, 4242);
    assert_eq!(&keys.identity_key, client.stores.identity.identity_key_pair().identity_key());
    assert_eq!(keys.signed_pre_key_id, 1);
    assert_eq!(keys.signed_pre_key, client.signed.public_key);
    assert_eq!(keys.signed_pre_key_signature, client.signature);
    assert_eq!(keys.one_time_prekeys_left(), 3);

    // The node-tree builder (`PreKeyUtils::build_upload_prekeys_request`) gives the same.
    let children = PreKeyUtils::build_upload_prekeys_request(
        4242,
        client.stores.identity.identity_key_pair().public_key().public_key_bytes(),
        1,
        client.signed.public_key.public_key_bytes(),
        &client.signature,
        client.pre_keys.iter().map(|(id, pair)| (*id, pair.public_key.public_key_bytes())),
    );
    let iq = NodeBuilder::new("iq").attr("xmlns", "encrypt").children(children).build();
    let mut tree = ClientKeys::from_upload(&iq).unwrap();
    assert_eq!(tree.signed_pre_key_signature, keys.signed_pre_key_signature);
    let ids: Vec<_> = (0..3)
        .map(|_| u32::from(tree.take_bundle(2).unwrap().pre_key_id().unwrap().unwrap()))
        .collect();
    assert_eq!(ids, [1, 2, 0x01_00_00]);
}

#[test]
fn rotation_and_refill_update_the_keys() {
    let client = TestClient::new(Jid::pn_device("15551230000", 2), [1]);
    let mut keys = ClientKeys::from_upload_ref(&decoded(&client.upload_bytes())).unwrap();

    let identity = client.stores.identity.identity_key_pair();
    let rotated = wacore::crypto::generate_curve_key_pair();
    let signature = wacore::crypto::calculate_curve_signature(
        identity.private_key(),
        &rotated.public_key.serialize(),
    )
    .unwrap();
    let rotate =
        wacore::iq::prekeys::RotateSignedPreKeySpec::new(2, rotated.public_key, signature.to_vec());
    let iq = NodeBuilder::new("iq").apply_content(rotate.build_iq().content).build();
    keys.apply_rotate(&iq.as_node_ref()).unwrap();
    assert_eq!(keys.signed_pre_key_id, 2);
    assert_eq!(keys.signed_pre_key, rotated.public_key);

    // A refill of the same device adds only the keys it does not have.
    let mut more = TestClient::new(client.jid.clone(), [1, 5]);
    more.stores = client.stores.clone();
    more.signed = client.signed.clone();
    more.signature = client.signature;
    keys.merge_upload(&decoded(&more.upload_bytes())).unwrap();
    assert_eq!(keys.one_time_prekeys_left(), 2);
    assert_eq!(keys.signed_pre_key_id, 1, "an upload carries the current signed key");

    // A bad signature is refused at upload time.
    let mut forged = TestClient::new(client.jid.clone(), [1]);
    forged.signature = [0; 64];
    assert!(ClientKeys::from_upload_ref(&decoded(&forged.upload_bytes())).is_err());
}

#[test]
fn rejects_what_it_cannot_decrypt() {
    let mut contact = FakeContact::new("15550000009").unwrap();
    let from = Jid::pn_device("15551230000", 1);
    assert!(contact.decrypt(&from, "skmsg", b"x", 2).is_err());
    assert!(contact.decrypt(&from, "msg", b"garbage", 2).is_err());
    assert!(FakeContact::new("+49").is_err());
}

#[test]
fn fetch_request_and_answer_around_several_users() {
    let mut known = FakeContact::new("15550000010").unwrap();
    let unknown = Jid::pn("15550000011");
    // The request as the library builds it (`PreKeyFetchSpec::build_iq`).
    let key =
        PreKeyUtils::build_fetch_prekeys_request(&[known.jid().clone(), unknown.clone()], None);
    let request = NodeBuilder::new("iq").attr("xmlns", "encrypt").children([key]).build();
    let bytes = over_the_wire(&request);
    let asked = super::requested_prekey_jids(&decoded(&bytes));
    assert_eq!(asked, [known.jid().clone(), unknown.clone()]);

    let users =
        vec![known.prekey_user_node(&asked[0]).unwrap(), super::prekey_user_error_node(&asked[1])];
    let answer = super::prekey_fetch_result_node("multi", users);
    let bytes = over_the_wire(&answer);
    let outcome = PreKeyUtils::parse_prekeys_response(&decoded(&bytes), &HashMap::new()).unwrap();
    assert!(outcome.bundles.contains_key(known.jid()));
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!((&outcome.rejected[0].jid, outcome.rejected[0].code), (&unknown, 406));
}

#[test]
fn contact_finds_its_part_of_a_dm_stanza() {
    let client_jid = Jid::pn_device("15551230000", 4);
    let mut client = TestClient::new(client_jid.clone(), []);
    let mut contact = FakeContact::new("15550000012").unwrap();
    let bundles = client_parses_fetch(&contact.prekey_fetch_result("f").unwrap());
    let address = contact.jid().to_protocol_address();
    let stores = &mut client.stores;
    run_ready(process_prekey_bundle(
        &address,
        &mut stores.sessions,
        &mut stores.identity,
        &bundles[contact.jid()],
        &mut rng(),
        UsePQRatchet::No,
    ))
    .unwrap()
    .unwrap();
    let plaintext = MessageUtils::encode_and_pad(&text("fan-out"));
    let encrypted = run_ready(message_encrypt(
        &plaintext,
        &address,
        &mut stores.sessions,
        &mut stores.identity,
    ))
    .unwrap()
    .unwrap();
    let (enc_type, _, ciphertext) = wacore::send::extract_ciphertext(encrypted).unwrap();
    let enc = Encrypted { enc_type, ciphertext: ciphertext.into() };

    // The DM shape (`wacore/src/send/encrypt.rs:325-344`): one `<to>` per device, here also
    // one for the client's own other device, which the contact must not take for its own.
    let to = |jid: Jid, enc: Node| NodeBuilder::new("to").attr("jid", jid).children([enc]).build();
    let other = Encrypted { enc_type: "msg", ciphertext: vec![1, 2, 3] };
    let stanza = NodeBuilder::new("message")
        .attr("to", contact.jid().clone())
        .attr("id", "DM1")
        .attr("type", "text")
        .children([NodeBuilder::new("participants")
            .children([
                to(Jid::pn_device("15551230000", 9), other.to_enc_node()),
                to(contact.jid().clone(), enc.to_enc_node()),
            ])
            .build()])
        .build();
    let bytes = over_the_wire(&stanza);
    let got = contact.decrypt_stanza(&client_jid, &decoded(&bytes)).unwrap();
    assert_eq!(got, Some(text("fan-out")));

    let elsewhere = NodeBuilder::new("message")
        .children([NodeBuilder::new("participants")
            .children([to(Jid::pn_device("15551230000", 9), other.to_enc_node())])
            .build()])
        .build();
    assert_eq!(contact.decrypt_stanza(&client_jid, &elsewhere.as_node_ref()).unwrap(), None);
}

/// The server keeps contacts and client keys behind `Arc<Mutex<…>>` in `Send + Sync` hooks.
#[test]
fn state_can_live_in_the_server() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<FakeContact>();
    shareable::<ClientKeys>();
}

#[test]
fn group_messages_with_sender_keys() {
    let mut alice = FakeContact::new("15550000011").unwrap();
    let mut bob = FakeContact::new("15550000012").unwrap();
    let group: Jid = "120363000000000042@g.us".parse().unwrap();
    let bundles = client_parses_fetch(&bob.prekey_fetch_result("fetch-g").unwrap());
    let mut bob_keys = ClientKeys::from_bundle(&bundles[bob.jid()]).unwrap();
    let bob_jid = bob.jid().clone();
    let alice_jid = alice.jid().clone();

    // The first message carries Alice's sender key, pairwise, then the skmsg.
    let first = alice
        .encrypt_group_to(&mut bob_keys, &bob_jid, &group, &alice_jid, &text("hi all"))
        .unwrap();
    let skdm = first.skdm.as_ref().expect("the first message carries the sender key");
    assert_eq!(skdm.enc_type, "pkmsg");
    let nodes = first.to_enc_nodes();
    let types: Vec<_> =
        nodes.iter().map(|n| n.attrs.get("type").unwrap().as_str().into_owned()).collect();
    assert_eq!(types, ["pkmsg", "skmsg"]);
    assert!(!bob.has_sender_key(&group, &alice_jid));
    // Without the sender key, the skmsg cannot be read.
    assert!(bob.decrypt_group(&alice_jid, &group, &first.skmsg, 2).is_err());
    let wrapper = bob.accept_group_enc(&alice_jid, &group, &nodes[0].as_node_ref()).unwrap();
    let dist = wrapper.sender_key_distribution_message.as_option().unwrap();
    assert_eq!(dist.group_id.as_deref(), Some("120363000000000042@g.us"));
    assert!(wrapper.conversation.is_none(), "the pairwise part is the sender key only");
    assert!(bob.has_sender_key(&group, &alice_jid));
    assert_eq!(bob.decrypt_group(&alice_jid, &group, &first.skmsg, 2).unwrap(), text("hi all"));

    // Later ones are skmsg only, on the same chain.
    let second = alice
        .encrypt_group_to(&mut bob_keys, &bob_jid, &group, &alice_jid, &location(1.5, 2.5))
        .unwrap();
    assert!(second.skdm.is_none());
    assert_eq!(second.to_enc_nodes().len(), 1);
    assert_eq!(
        bob.decrypt_group(&alice_jid, &group, &second.skmsg, 2).unwrap(),
        location(1.5, 2.5)
    );
    // Another group gets its own sender key, distributed again.
    let other: Jid = "120363000000000043@g.us".parse().unwrap();
    let third =
        alice.encrypt_group_to(&mut bob_keys, &bob_jid, &other, &alice_jid, &text("x")).unwrap();
    assert!(third.skdm.is_some());
    assert!(bob.decrypt_group(&alice_jid, &other, &third.skmsg, 2).is_err());
    // Seen under another JID (her LID), the same group's key is distributed again.
    let lid: Jid = "123456789012345@lid".parse().unwrap();
    let fourth = alice.encrypt_group_to(&mut bob_keys, &bob_jid, &group, &lid, &text("y")).unwrap();
    assert!(fourth.skdm.is_some());
}
