//! Signal sessions of the fake contacts (filled in by the signal work).
