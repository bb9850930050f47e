//! iothub-auth (under construction)
