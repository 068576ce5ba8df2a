use super::Ctx; use crate::Failure; pub fn check(_ctx: &Ctx) -> Result<(), Failure> { todo!() }
