//! chorus-codecs: audio and video codecs. Filled in by the conferencing issue.
