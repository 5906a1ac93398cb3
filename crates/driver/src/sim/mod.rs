//! The simulated WhatsApp network (in progress).
