//! The statistics overlay of the screen window (F2, like Moonlight's): frame rate, picture
//! age, the agent's per-stage times, quality and path — drawn with a built-in 3×5 pixel font,
//! so the window needs no font library.

use ponte_e2e::screen::FrameStats;

/// Glyph rows, 3 bits each (bit 2 is the left column).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' | 'S' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [7, 4, 5, 5, 7],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'O' => [7, 5, 5, 5, 7],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'Y' => [5, 5, 2, 2, 2],
        'H' => [5, 5, 7, 5, 5],
        'K' => [5, 5, 6, 5, 5],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'P' => [7, 5, 7, 4, 4],
        'Q' => [7, 5, 5, 7, 1],
        'R' => [6, 5, 6, 5, 5],
        'T' => [7, 2, 2, 2, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        '/' => [1, 1, 2, 4, 4],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        _ => [0; 5],
    }
}

/// Pixels per font pixel.
const ZOOM: u32 = 2;
const ADVANCE: u32 = 4 * ZOOM;
const LINE: u32 = 7 * ZOOM;
const PAD: u32 = 2 * ZOOM;

/// The overlay's lines for the latest frame figures.
pub fn lines(stats: Option<&FrameStats>, fps: f64, bytes_per_s: f64, present_ms: f64) -> Vec<String> {
    let mut out = vec![format!("FPS {fps:.0}  {:.0} KB/S", bytes_per_s / 1e3)];
    if let Some(s) = stats {
        out.push(format!(
            "CAPTURE {:.1}  DIFF {:.1}  ENCODE {:.1}  SEND {:.1}  DRAW {present_ms:.1} MS",
            f64::from(s.capture_us) / 1e3,
            f64::from(s.diff_us) / 1e3,
            f64::from(s.encode_us.saturating_sub(s.diff_us)) / 1e3,
            f64::from(s.send_us) / 1e3,
        ));
        out.push(format!(
            "RTT {:.0} MS  RATE {:.0} KB/S  BACKLOG {:.0} MS",
            f64::from(s.rtt_us) / 1e3,
            f64::from(s.rate) / 1e3,
            f64::from(s.backlog_us) / 1e3,
        ));
        let quality = if s.quality == 0 {
            "EXACT".to_owned()
        } else {
            format!("Q{} X{}", s.quality, s.scale)
        };
        out.push(format!(
            "{quality}  INEXACT {}  MOVED {}",
            s.inexact_tiles, s.copied_pixels
        ));
    }
    out
}

/// Draws `lines` in a dark box at the top left of `buffer` (`width`×`height`, 0x00RRGGBB).
pub fn draw(buffer: &mut [u32], width: u32, height: u32, lines: &[String]) {
    let longest = lines.iter().map(|l| l.chars().count() as u32).max().unwrap_or(0);
    let (bw, bh) = (
        (longest * ADVANCE + 2 * PAD).min(width),
        (lines.len() as u32 * LINE + 2 * PAD).min(height),
    );
    for y in 0..bh {
        for px in &mut buffer[(y * width) as usize..(y * width + bw) as usize] {
            // Darken what is under the box, so the picture still shows through.
            *px = (*px >> 2) & 0x003f_3f3f;
        }
    }
    for (row, line) in lines.iter().enumerate() {
        for (col, c) in line.chars().enumerate() {
            let (x0, y0) = (PAD + col as u32 * ADVANCE, PAD + row as u32 * LINE);
            for (gy, bits) in glyph(c).iter().enumerate() {
                for gx in 0..3 {
                    if bits & (4 >> gx) == 0 {
                        continue;
                    }
                    for dy in 0..ZOOM {
                        for dx in 0..ZOOM {
                            let (x, y) = (x0 + gx * ZOOM + dx, y0 + gy as u32 * ZOOM + dy);
                            if x < bw && y < bh {
                                buffer[(y * width + x) as usize] = 0x00ff_ff60;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_the_figures() {
        let stats = FrameStats {
            capture_us: 4_200,
            encode_us: 9_000,
            diff_us: 2_500,
            send_us: 300,
            rtt_us: 52_000,
            rate: 610_000,
            quality: 40,
            scale: 4,
            inexact_tiles: 12,
            ..FrameStats::default()
        };
        let l = lines(Some(&stats), 23.4, 612_000.0, 1.5);
        assert_eq!(l[0], "FPS 23  612 KB/S");
        assert!(
            l[1].starts_with("CAPTURE 4.2  DIFF 2.5  ENCODE 6.5  SEND 0.3  DRAW 1.5"),
            "{}",
            l[1]
        );
        assert!(l[2].starts_with("RTT 52 MS  RATE 610 KB/S"), "{}", l[2]);
        assert!(l[3].starts_with("Q40 X4  INEXACT 12"), "{}", l[3]);
        assert_eq!(lines(None, 0.0, 0.0, 0.0).len(), 1);
    }

    #[test]
    fn a_hostile_agents_figures_stay_short_and_inside() {
        let stats = FrameStats {
            captured_unix_us: u64::MAX,
            capture_us: u32::MAX,
            encode_us: u32::MAX,
            diff_us: u32::MAX,
            send_us: u32::MAX,
            backlog_us: u32::MAX,
            budget: u32::MAX,
            rtt_us: u32::MAX,
            rate: u32::MAX,
            inexact_tiles: u32::MAX,
            quality: u8::MAX,
            scale: u8::MAX,
            copied_pixels: u32::MAX,
        };
        let l = lines(Some(&stats), f64::MAX, f64::NAN, f64::INFINITY);
        assert!(l.iter().all(|line| line.len() < 400), "{l:?}");
        let (w, h) = (64, 16);
        let mut buffer = vec![0; (w * h) as usize];
        draw(&mut buffer, w, h, &l);
    }

    #[test]
    fn text_is_drawn_in_a_box_that_fits() {
        let (w, h) = (100, 40);
        let mut buffer = vec![0x00ff_ffff; (w * h) as usize];
        draw(
            &mut buffer,
            w,
            h,
            &["FPS 60 AND A LINE LONGER THAN THE WINDOW".into()],
        );
        assert!(buffer.contains(&0x00ff_ff60), "glyphs drawn");
        assert!(buffer.contains(&0x003f_3f3f), "box darkened");
        assert_eq!(
            buffer[(w * h - 1) as usize],
            0x00ff_ffff,
            "outside the box untouched"
        );
        // A tiny window only gets what fits.
        let mut small = vec![0; 4];
        draw(&mut small, 2, 2, &["8".into()]);
    }
}
