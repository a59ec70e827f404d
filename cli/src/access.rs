//! `--allow-foreign-owner [--owner USER] --group GROUP`: which segment of
//! another user `serve`, `stats` and `verify` trust.

use crate::{Error, Result};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Foreign {
    /// Open the segment even if another user owns it (one shared through a
    /// group: docs/operations.md, "Permissions"), provided that user is
    /// root or --owner and the file belongs to --group.
    #[arg(long)]
    pub allow_foreign_owner: bool,
    /// With --allow-foreign-owner: the user (name or uid), besides root,
    /// that may own the segment.
    #[arg(long, value_name = "USER", requires = "allow_foreign_owner")]
    pub owner: Option<String>,
    /// With --allow-foreign-owner: the group (name or gid) the segment is
    /// shared through, which it must belong to.
    #[arg(long, value_name = "GROUP", requires = "allow_foreign_owner")]
    pub group: Option<String>,
}

impl Foreign {
    /// The uid and gid named, resolved.
    pub fn ids(&self) -> Result<(Option<u32>, Option<u32>)> {
        let owner = self
            .owner
            .as_deref()
            .map(scsp::config::user_id)
            .transpose()
            .map_err(|e| Error::Usage(format!("--owner: {e}")))?;
        let group = self
            .group
            .as_deref()
            .map(scsp::config::group_id)
            .transpose()
            .map_err(|e| Error::Usage(format!("--group: {e}")))?;
        Ok((owner, group))
    }

    /// The access rules for opening an existing segment.
    pub fn access(&self) -> Result<scsp::Access> {
        let (owner, group) = self.ids()?;
        Ok(scsp::Access {
            allow_foreign_owner: self.allow_foreign_owner,
            owner,
            group,
        })
    }
}
