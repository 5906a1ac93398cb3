//! Groups on the simulated network. A group exists once a control op creates it or a message
//! touches it (a number posts in it, a contact writes in it); members are phone JIDs, or LIDs
//! whose phone the network does not know. An instance is a member through the phone it is
//! linked with.

use std::collections::{BTreeSet, HashMap};

use bzapper_core::{Jid, Phone};
use rand::Rng;

use super::control::CreateGroupRequest;
use super::transport::SimError;
use crate::GroupSummary;

/// WhatsApp's limits on a group's subject and size.
const MAX_SUBJECT_CHARS: usize = 100;
const MAX_PARTICIPANTS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Group {
    subject: Option<String>,
    participants: BTreeSet<Jid>,
    admins: BTreeSet<Jid>,
}

impl Group {
    /// Its subject, `Group <last 4 digits of the id>` when none was given.
    fn subject(&self, jid: &Jid) -> String {
        self.subject.clone().unwrap_or_else(|| {
            let id = jid.user();
            format!("Group {}", &id[id.len().saturating_sub(4)..])
        })
    }

    /// Its members with whether each is an admin, in a stable order.
    pub(crate) fn members(&self) -> Vec<(Jid, bool)> {
        self.participants.iter().map(|p| (p.clone(), self.admins.contains(p))).collect()
    }

    pub(crate) fn summary(&self, jid: &Jid, me: &Jid) -> GroupSummary {
        GroupSummary {
            jid: jid.clone(),
            subject: self.subject(jid),
            size: u32::try_from(self.participants.len()).unwrap_or(u32::MAX),
            is_admin: self.admins.contains(me),
        }
    }
}

/// Every group of the network.
#[derive(Debug, Default)]
pub(crate) struct Groups(HashMap<Jid, Group>);

/// A checked [`CreateGroupRequest`].
pub(crate) struct NewGroup {
    subject: Option<String>,
    participants: BTreeSet<Jid>,
    admins: BTreeSet<Jid>,
}

impl NewGroup {
    pub(crate) fn parse(req: &CreateGroupRequest) -> Result<Self, SimError> {
        let invalid = |m: String| SimError::InvalidRequest(m);
        let subject = match req.subject.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(invalid("subject: must not be empty".into())),
            Some(s) if s.chars().count() > MAX_SUBJECT_CHARS => {
                return Err(invalid(format!("subject: longer than {MAX_SUBJECT_CHARS} characters")))
            }
            Some(s) => Some(s.to_string()),
        };
        let phone_jid = |field: &str, s: &str| {
            let jid = Jid::parse_recipient(s).map_err(|e| invalid(format!("{field}: {e}")))?;
            jid.phone()
                .map(|p| p.jid())
                .ok_or_else(|| invalid(format!("{field}: `{s}` is not a phone number")))
        };
        let participants = req
            .participants
            .iter()
            .map(|p| phone_jid("participants", p))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if participants.is_empty() {
            return Err(invalid("participants: a group needs at least one".into()));
        }
        if participants.len() > MAX_PARTICIPANTS {
            return Err(invalid(format!("participants: at most {MAX_PARTICIPANTS}")));
        }
        let admins = req
            .admins
            .iter()
            .map(|a| phone_jid("admins", a))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if let Some(outsider) = admins.iter().find(|a| !participants.contains(*a)) {
            return Err(invalid(format!("admins: {outsider} is not a participant")));
        }
        Ok(Self { subject, participants, admins })
    }
}

impl Groups {
    /// Makes the group exist with `members` in it (a message seen in it).
    pub(crate) fn touch(&mut self, group: &Jid, members: impl IntoIterator<Item = Jid>) {
        self.0.entry(group.clone()).or_default().participants.extend(members);
    }

    /// Creates a group under a new id, shaped like WhatsApp's (`120363` and 12 digits).
    pub(crate) fn create(&mut self, new: NewGroup) -> Jid {
        let mut rng = rand::thread_rng();
        let jid = loop {
            let id = format!("120363{:012}", rng.gen_range(0..1_000_000_000_000u64));
            // Digits always make a group JID; a clash draws again.
            match Jid::parse(&format!("{id}@g.us")) {
                Ok(jid) if !self.0.contains_key(&jid) => break jid,
                _ => continue,
            }
        };
        let group =
            Group { subject: new.subject, participants: new.participants, admins: new.admins };
        self.0.insert(jid.clone(), group);
        jid
    }

    /// The groups `me` is in, by JID.
    pub(crate) fn of_member(&self, me: &Phone) -> Vec<GroupSummary> {
        let me = me.jid();
        let mut list: Vec<GroupSummary> = self
            .0
            .iter()
            .filter(|(_, g)| g.participants.contains(&me))
            .map(|(jid, g)| g.summary(jid, &me))
            .collect();
        list.sort_by(|a, b| a.jid.cmp(&b.jid));
        list
    }

    /// The group, if `me` is in it.
    pub(crate) fn with_member(&self, jid: &Jid, me: &Phone) -> Option<&Group> {
        self.0.get(jid).filter(|g| g.participants.contains(&me.jid()))
    }
}
