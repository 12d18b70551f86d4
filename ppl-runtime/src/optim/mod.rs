//! Optimizers that update a ParamStore's parameters in place (in progress).
