//! Finding content that moved vertically (scrolling) between the last frame sent and a new
//! capture, so that it travels as a [`CopyRect`] instead of as pixels.
//!
//! Each column stripe of [`TILE`] pixels is looked at on its own, so a scrolled page next to a
//! still sidebar or scrollbar is still found. Rows are compared by hash; a wrong match costs
//! nothing but bytes, because the encoder applies the moves to its copy of the viewer's
//! picture and then sends every tile that still differs.

use std::collections::HashMap;

use ponte_e2e::screen::{CopyRect, TILE};

use crate::image::{CAPTURE_BYTES_PER_PIXEL, Image};

/// Fewest rows that must agree on one offset before a stripe counts as moved.
const MIN_VOTES: u32 = 8;

/// Shortest run of moved rows worth a copy.
const MIN_RUN: usize = 16;

/// A row's hash: FNV-1a over 8-byte words in four independent lanes (the multiplications of
/// one lane wait for each other; four lanes keep the core busy). Collisions only cost bytes.
fn hash(row: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut lanes = [0xcbf2_9ce4_8422_2325u64; 4];
    let mut blocks = row.chunks_exact(32);
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            *lane = (*lane ^ v).wrapping_mul(PRIME);
        }
    }
    let mut h = lanes
        .iter()
        .fold(0u64, |h, &l| (h ^ l).wrapping_mul(PRIME).rotate_left(29));
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// Stripes looked at first: if none of them moved, the change is no scroll and the other
/// stripes are not hashed (a full-screen change costs a few stripes, not the whole screen).
const PROBES: usize = 4;

/// The vertical moves from `previous` (packed, `width * 4` bytes per row) to `current`, in the
/// order they must be applied.
///
/// `changed[s]`: whether column stripe `s` has changed tiles (only those can hold moved rows).
pub(crate) fn vertical_moves(previous: &[u8], current: &Image<'_>, changed: &[bool]) -> Vec<CopyRect> {
    let (w, h) = (usize::from(current.width), usize::from(current.height));
    let side = usize::from(TILE);
    let mut hp = vec![0u64; h];
    let mut hc = vec![0u64; h];
    // The runs of rows of stripe `x` that moved: (dy, x, width, y, height).
    let mut stripe = |x: usize| -> Vec<(isize, usize, usize, usize, usize)> {
        let sw = side.min(w - x);
        for y in 0..h {
            let start = (y * w + x) * CAPTURE_BYTES_PER_PIXEL;
            hp[y] = hash(&previous[start..start + sw * CAPTURE_BYTES_PER_PIXEL]);
            hc[y] = hash(current.row(y, x, sw));
        }
        let Some(dy) = offset(&hp, &hc) else {
            return Vec::new();
        };
        // Runs of rows y whose content was at y + dy, starting at a row that changed.
        let moved = |y: usize| {
            let s = y as isize + dy;
            s >= 0 && (s as usize) < h && hc[y] == hp[s as usize]
        };
        let mut runs = Vec::new();
        let mut y = 0;
        while y < h {
            if !(moved(y) && hc[y] != hp[y]) {
                y += 1;
                continue;
            }
            let start = y;
            while y < h && moved(y) {
                y += 1;
            }
            if y - start >= MIN_RUN {
                runs.push((dy, x, sw, start, y - start));
            }
        }
        runs
    };
    let stripes: Vec<usize> = (0..w.div_ceil(side))
        .filter(|&s| changed.get(s).copied().unwrap_or(true))
        .collect();
    let probes: Vec<usize> = (0..PROBES.min(stripes.len()))
        .map(|k| stripes[(2 * k + 1) * stripes.len() / (2 * PROBES.min(stripes.len()))])
        .collect();
    let mut found = Vec::new();
    for &s in &probes {
        found.extend(stripe(s * side));
    }
    if found.is_empty() {
        return Vec::new();
    }
    for &s in stripes.iter().filter(|s| !probes.contains(s)) {
        found.extend(stripe(s * side));
    }
    // Merge neighbouring stripes that moved the same rows by the same offset.
    found.sort_by_key(|&(dy, x, _, y, height)| (dy, y, height, x));
    let mut merged: Vec<(isize, usize, usize, usize, usize)> = Vec::new();
    for f in found {
        match merged.last_mut() {
            Some(m) if (m.0, m.3, m.4) == (f.0, f.3, f.4) && m.1 + m.2 == f.1 => m.2 += f.2,
            _ => merged.push(f),
        }
    }
    // Content moving up is copied top to bottom, content moving down bottom to top, so no
    // copy reads rows an earlier one has overwritten (stripes of other offsets do not overlap).
    merged.sort_by_key(|&(dy, _, _, y, _)| if dy > 0 { y as isize } else { -(y as isize) });
    merged
        .into_iter()
        .map(|(dy, x, width, y, height)| CopyRect {
            // All within the screen, whose sides are below MAX_SIDE.
            src_x: x as u16,
            src_y: (y as isize + dy) as u16,
            x: x as u16,
            y: y as u16,
            width: width as u16,
            height: height as u16,
        })
        .collect()
}

/// The offset (source row minus destination row) most changed rows agree on, if enough do.
fn offset(hp: &[u64], hc: &[u64]) -> Option<isize> {
    // Rows whose content appears once in the old picture; blank rows repeat and say nothing.
    let mut at: HashMap<u64, Option<usize>> = HashMap::with_capacity(hp.len());
    for (y, &v) in hp.iter().enumerate() {
        at.entry(v).and_modify(|e| *e = None).or_insert(Some(y));
    }
    let mut votes: HashMap<isize, u32> = HashMap::new();
    for (y, &v) in hc.iter().enumerate() {
        if v == hp[y] {
            continue;
        }
        if let Some(Some(from)) = at.get(&v) {
            *votes.entry(*from as isize - y as isize).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .filter(|&(dy, n)| dy != 0 && n >= MIN_VOTES)
        .max_by_key(|&(dy, n)| (n, -dy.abs()))
        .map(|(dy, _)| dy)
}
