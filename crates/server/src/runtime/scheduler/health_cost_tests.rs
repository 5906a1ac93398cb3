//! The health cost of a refused send is decided by WhatsApp's error code, not the error text.
//! (That the simulated network's refusal carries the code is tested in the driver's
//! `sim::tests`; that it lowers health end to end, in the API test
//! `reach_out_refusals_lower_health_until_the_number_leaves_rotation`.)

use bzapper_core::sending::HealthEvent;
use bzapper_driver::{DriverError, REACH_OUT_RESTRICTED};

use super::health_cost;

#[test]
fn a_463_costs_a_reach_out_refusal_whatever_its_text_says() {
    let coded = DriverError::refused(REACH_OUT_RESTRICTED, "the network said no");
    assert_eq!(health_cost(&coded), HealthEvent::ReachOutRefused);
    // Text that mentions 463 without the code is an ordinary failure.
    let worded = DriverError::rejected("WhatsApp error 463: reach-out restricted");
    assert_eq!(health_cost(&worded), HealthEvent::SendFailed);
    assert_eq!(health_cost(&DriverError::refused(479, "malformed")), HealthEvent::SendFailed);
    assert_eq!(health_cost(&DriverError::NotFound("463".into())), HealthEvent::SendFailed);
}
