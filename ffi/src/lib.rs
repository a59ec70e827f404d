//! C ABI for scsp; see include/scsp.h. (Filled in by the C ABI issue.)
