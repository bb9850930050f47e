//! iothub-device (under construction)
