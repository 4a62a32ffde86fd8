//! Residual coders: what fixes fidelity after the base model (none yet, so the residual is the
//! data itself).

pub mod lbrc;
