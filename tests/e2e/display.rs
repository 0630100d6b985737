//! Drawing on and reading back an X display the tests started (`ponte_testbed::Xvfb`), shared by
//! the screen tests.

#![allow(dead_code)]

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass};
use x11rb::rust_connection::RustConnection;

pub fn root(conn: &RustConnection) -> u32 {
    conn.setup().roots[0].root
}

/// Waits until the server processed everything sent so far.
pub fn sync(conn: &RustConnection) {
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// A window covering the screen from the top left, and a graphics context on it.
pub fn window(conn: &RustConnection, width: u16, height: u16) -> (u32, u32) {
    let window = conn.generate_id().unwrap();
    conn.create_window(
        24,
        window,
        root(conn),
        0,
        0,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().override_redirect(1).background_pixel(0),
    )
    .unwrap();
    conn.map_window(window).unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, window, &CreateGCAux::new()).unwrap();
    sync(conn);
    (window, gc)
}

/// Paints `pixel(x, y)` (0xRRGGBB) over the window.
pub fn paint(
    conn: &RustConnection,
    (window, gc): (u32, u32),
    width: u16,
    height: u16,
    pixel: impl Fn(usize, usize) -> u32,
) {
    // Strips of 16 rows keep each request under the core protocol's size limit.
    for y0 in (0..usize::from(height)).step_by(16) {
        let rows = 16.min(usize::from(height) - y0);
        let mut data = Vec::with_capacity(usize::from(width) * rows * 4);
        for y in y0..y0 + rows {
            for x in 0..usize::from(width) {
                data.extend_from_slice(&pixel(x, y).to_le_bytes());
            }
        }
        conn.put_image(
            ImageFormat::Z_PIXMAP,
            window,
            gc,
            width,
            rows as u16,
            0,
            y0 as i16,
            0,
            24,
            &data,
        )
        .unwrap();
    }
    sync(conn);
}

/// Covers the screen with a window showing `pixel(x, y)` (0xRRGGBB); returns the window.
pub fn draw(conn: &RustConnection, width: u16, height: u16, pixel: impl Fn(usize, usize) -> u32) -> u32 {
    let win = window(conn, width, height);
    paint(conn, win, width, height, pixel);
    win.0
}

/// The display's own picture as 0xRRGGBB pixels.
pub fn dump(conn: &RustConnection) -> (u16, u16, Vec<u32>) {
    // The root's current size (the setup's is from connection time).
    let geometry = conn.get_geometry(root(conn)).unwrap().reply().unwrap();
    let (w, h) = (geometry.width, geometry.height);
    let reply = conn
        .get_image(ImageFormat::Z_PIXMAP, root(conn), 0, 0, w, h, !0)
        .unwrap()
        .reply()
        .unwrap();
    let pixels = reply
        .data
        .chunks_exact(4)
        .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 0]))
        .collect();
    (w, h, pixels)
}
