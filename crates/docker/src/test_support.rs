//! Fakes shared by the crate's unit tests.

/// `docker cp` is tested end to end (tests/tests/docker_cp.rs); these tests never copy.
pub struct NoFiles;

impl berth_core::files::ContainerFiles for NoFiles {
    fn stat(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
    ) -> Result<berth_core::files::PathStat, berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
    fn archive(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
        _: &mut dyn std::io::Write,
    ) -> Result<berth_core::files::PathStat, berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
    fn extract(
        &self,
        _: &berth_core::files::FsView,
        p: &str,
        _: &mut dyn std::io::Read,
        _: berth_core::files::ExtractOptions,
    ) -> Result<(), berth_core::files::FilesError> {
        Err(berth_core::files::FilesError::NotFound(p.into()))
    }
}
