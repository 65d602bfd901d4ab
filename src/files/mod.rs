//! What routers download, below HTTP routing: image md5s (`checksum`), the day-0 config a
//! router gets and its rendering (`day0`), the zero-copy download path (`sendfile`) and the
//! table of downloads in flight (`transfers`). The routes themselves are in `crate::http`.

pub mod checksum;
pub(crate) mod day0;
pub(crate) mod sendfile;
pub(crate) mod transfers;
