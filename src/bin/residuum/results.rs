//! What `bench` measures, one row per field, target and codec: shared by its table, its CSV
//! and its plot.

use std::fmt::Write as _;
use std::path::Path;

/// One measured point.
#[derive(Clone)]
pub struct Row {
    pub field: String,
    pub target: f64,
    pub codec: String,
    pub bytes: usize,
    pub cr: f64,
    pub nrmse: f64,
    pub worst_block: f64,
    pub compress_mbs: f64,
    pub decompress_mbs: f64,
    /// The error bound the codec was given (the target for residuum).
    pub bound: f64,
    /// residuum's block count (0 for peers).
    pub blocks: usize,
}

pub fn write_csv(rows: &[Row], path: &Path) -> Result<(), String> {
    let mut s = String::from(
        "field,target,codec,bytes,cr,nrmse,worst_block_nrmse,compress_mb_s,decompress_mb_s,bound,blocks\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{:e},{},{},{:.4},{:.4e},{:.4e},{:.1},{:.1},{:.6e},{}",
            r.field,
            r.target,
            r.codec,
            r.bytes,
            r.cr,
            r.nrmse,
            r.worst_block,
            r.compress_mbs,
            r.decompress_mbs,
            r.bound,
            r.blocks
        );
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}
