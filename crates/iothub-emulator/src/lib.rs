//! iothub-emulator (under construction)
