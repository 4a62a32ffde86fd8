//! Residual coders: what fixes fidelity after the base model (or on the data itself, without
//! one). LBRC is ours; GAE the baseline it replaces.

pub mod gae;
pub mod lbrc;
