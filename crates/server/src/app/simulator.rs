//! What the `/v1/sim/...` routes need besides the network's control: the control itself (when
//! the gateway runs on a simulated network), a number's linked phone (the wire fake addresses
//! devices by phone) and its current QR code (what a simulated phone scans).

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{Store, StoreError};

use crate::app::sim::SimControl;
use crate::model::ids::InstanceId;
use crate::runtime::supervisor::{QrCode, Supervisor};

/// How long a scan waits for the first QR code of a number created a moment ago (as a person
/// scans what they see).
const QR_WAIT: Duration = Duration::from_secs(5);

pub struct Simulator {
    control: Option<Arc<dyn SimControl>>,
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
}

impl Simulator {
    pub fn new(
        control: Option<Arc<dyn SimControl>>,
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
    ) -> Self {
        Simulator { control, store, supervisor }
    }

    /// The network's control; `None` when the gateway runs on the real network.
    pub fn control(&self) -> Option<Arc<dyn SimControl>> {
        self.control.clone()
    }

    /// The instance's linked phone (E.164), when it has one.
    pub async fn linked_phone(&self, id: &InstanceId) -> Result<Option<String>, StoreError> {
        Ok(self.store.get_instance_by_id(id).await?.and_then(|r| r.phone))
    }

    /// The instance's current QR code, waiting briefly for the first one.
    pub async fn current_qr(&self, id: &InstanceId) -> Option<QrCode> {
        self.supervisor.qr(id, QR_WAIT).await
    }
}
