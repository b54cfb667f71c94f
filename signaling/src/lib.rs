//! chorus-signaling: SIP, SDP and the control side. Filled in by the SIP issue.
