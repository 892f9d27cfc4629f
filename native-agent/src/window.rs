//! `remote view`'s window: the other device's screen, kept in shape as the window is resized
//! (bars where the shapes differ), and, in a control session, the pointer, buttons, wheel and
//! keys over it as the session's input events.
//!
//! minifb: one small crate for X11 (loaded at run time: no -dev packages), Wayland, Windows and
//! macOS, a CPU framebuffer scaled with its aspect ratio kept, and mouse and key input; no GPU
//! stack, which a picture decoded on the CPU does not need. Its window is not `Send`, so it lives
//! on a thread of its own; pictures go in, events come out.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use minifb::{InputCallback, Key, KeyRepeat, MouseButton, MouseMode, ScaleMode, WindowOptions};
use tokio::sync::mpsc;
use udc_client::events::{Button, InputEvent};

use crate::video::Picture;

/// What the window tells the session.
#[derive(Debug)]
pub enum WindowEvent {
    /// Input over the picture (control sessions only).
    Input(Vec<InputEvent>),
    /// The person closed it: the session ends.
    Closed,
    /// No window could be opened (no display server): the session goes on without one.
    Failed(String),
}

pub struct ViewerWindow {
    latest: Arc<Mutex<Option<Arc<Picture>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ViewerWindow {
    /// Opens a window titled `title`; its events go to `events`. With `control`, input over it
    /// is sent; otherwise nothing is.
    pub fn open(
        title: String,
        control: bool,
        events: mpsc::UnboundedSender<WindowEvent>,
    ) -> ViewerWindow {
        let latest = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (latest, stop) = (Arc::clone(&latest), Arc::clone(&stop));
            std::thread::spawn(move || {
                // minifb panics on an X server it cannot use (XInitThreads failing): the session
                // must hear of it and go on without a window, not wait on a window that is gone.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&title, control, &latest, &stop, &events)
                }));
                if ran.is_err() {
                    let _ = events.send(WindowEvent::Failed("the window system failed".into()));
                }
            })
        };
        ViewerWindow {
            latest,
            stop,
            thread: Some(thread),
        }
    }

    /// Shows `picture` next.
    pub fn show(&self, picture: Arc<Picture>) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(picture);
        }
    }
}

impl Drop for ViewerWindow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a `pw`×`ph` picture sits in a `ww`×`wh` window when it fits whole, centred.
pub fn picture_rect(ww: f32, wh: f32, pw: f32, ph: f32) -> (f32, f32, f32, f32) {
    if pw <= 0.0 || ph <= 0.0 {
        return (0.0, 0.0, ww, wh);
    }
    let scale = (ww / pw).min(wh / ph);
    let (w, h) = (pw * scale, ph * scale);
    ((ww - w) / 2.0, (wh - h) / 2.0, w, h)
}

/// A point of the window as fractions of the picture; `None` over the bars.
pub fn fraction(x: f32, y: f32, rect: (f32, f32, f32, f32)) -> Option<(f64, f64)> {
    let (fx, fy) = ((x - rect.0) / rect.2, (y - rect.1) / rect.3);
    ((0.0..=1.0).contains(&fx) && (0.0..=1.0).contains(&fy))
        .then_some((f64::from(fx), f64::from(fy)))
}

/// The modifier keys, named as browsers name them. Right Alt is left out: it is AltGr on most
/// layouts, and what it types arrives as characters.
fn modifier(key: Key) -> Option<&'static str> {
    Some(match key {
        Key::LeftShift | Key::RightShift => "Shift",
        Key::LeftCtrl | Key::RightCtrl => "Control",
        Key::LeftAlt => "Alt",
        Key::LeftSuper | Key::RightSuper => "Meta",
        _ => return None,
    })
}

/// The key names the target replays (as browsers spell them), for keys that type no character.
fn named(key: Key) -> Option<&'static str> {
    Some(match key {
        Key::Enter | Key::NumPadEnter => "Enter",
        Key::Backspace => "Backspace",
        Key::Tab => "Tab",
        Key::Escape => "Escape",
        Key::Delete => "Delete",
        Key::Insert => "Insert",
        Key::Home => "Home",
        Key::End => "End",
        Key::PageUp => "PageUp",
        Key::PageDown => "PageDown",
        Key::Left => "ArrowLeft",
        Key::Right => "ArrowRight",
        Key::Up => "ArrowUp",
        Key::Down => "ArrowDown",
        Key::F1 => "F1",
        Key::F2 => "F2",
        Key::F3 => "F3",
        Key::F4 => "F4",
        Key::F5 => "F5",
        Key::F6 => "F6",
        Key::F7 => "F7",
        Key::F8 => "F8",
        Key::F9 => "F9",
        Key::F10 => "F10",
        Key::F11 => "F11",
        Key::F12 => "F12",
        _ => return None,
    })
}

const LETTERS: [Key; 26] = [
    Key::A,
    Key::B,
    Key::C,
    Key::D,
    Key::E,
    Key::F,
    Key::G,
    Key::H,
    Key::I,
    Key::J,
    Key::K,
    Key::L,
    Key::M,
    Key::N,
    Key::O,
    Key::P,
    Key::Q,
    Key::R,
    Key::S,
    Key::T,
    Key::U,
    Key::V,
    Key::W,
    Key::X,
    Key::Y,
    Key::Z,
];

/// The characters the window's keyboard layout typed, as the window system gave them.
struct Typed(Rc<RefCell<Vec<char>>>);

impl InputCallback for Typed {
    fn add_char(&mut self, c: u32) {
        if let Some(c) = char::from_u32(c).filter(|c| !c.is_control()) {
            self.0.borrow_mut().push(c);
        }
    }
}

fn key(name: String, down: bool, modifiers: &[&str]) -> InputEvent {
    InputEvent::Key {
        key: name,
        down,
        modifiers: modifiers.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn run(
    title: &str,
    control: bool,
    latest: &Mutex<Option<Arc<Picture>>>,
    stop: &AtomicBool,
    events: &mpsc::UnboundedSender<WindowEvent>,
) {
    let options = WindowOptions {
        resize: true,
        scale_mode: ScaleMode::AspectRatioStretch,
        ..WindowOptions::default()
    };
    // The first picture sets the window's size (a window as large as the screen it shows, as
    // far as the display allows).
    let first = loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Some(p) = latest.lock().ok().and_then(|mut l| l.take()) {
            break p;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut window = match minifb::Window::new(title, first.width, first.height, options) {
        Ok(w) => w,
        Err(e) => {
            let _ = events.send(WindowEvent::Failed(e.to_string()));
            return;
        }
    };
    window.set_target_fps(60);
    let typed = Rc::new(RefCell::new(Vec::new()));
    window.set_input_callback(Box::new(Typed(Rc::clone(&typed))));
    let mut shown = first;
    let mut buffer = Vec::new();
    let mut fresh = true;
    let mut drawn_at_size = (0, 0);
    // Where the pointer was last seen, and where the target was last told it is.
    let mut last_at: Option<(f64, f64)> = None;
    let mut sent_at: Option<(f64, f64)> = None;
    let mut buttons = [false; 3];
    let mut wheel = 0.0f32;
    // The keys this window sent down and not yet up, by name.
    let mut down: std::collections::BTreeSet<&'static str> = std::collections::BTreeSet::new();
    // Whether the window had the focus at the last frame (a window manager gives it; without
    // one, the pointer's place does, and the window may never hear it has it).
    let mut was_active = false;
    while window.is_open() && !stop.load(Ordering::SeqCst) {
        if let Some(p) = latest.lock().ok().and_then(|mut l| l.take()) {
            shown = p;
            fresh = true;
        }
        // Scaling the picture to the window costs CPU every time: only for a new picture or a
        // new window size; otherwise only the window's events are read.
        let size = window.get_size();
        let drew = if fresh || size != drawn_at_size {
            if fresh {
                buffer.clear();
                buffer.extend(
                    shown
                        .rgb
                        .chunks_exact(3)
                        .map(|p| u32::from_be_bytes([0, p[0], p[1], p[2]])),
                );
                fresh = false;
            }
            drawn_at_size = size;
            window.update_with_buffer(&buffer, shown.width, shown.height)
        } else {
            window.update();
            Ok(())
        };
        if drew.is_err() {
            break;
        }
        if !control {
            typed.borrow_mut().clear();
            continue;
        }
        let mut out = Vec::new();
        let (ww, wh) = window.get_size();
        let rect = picture_rect(
            ww as f32,
            wh as f32,
            shown.width as f32,
            shown.height as f32,
        );
        let at = window
            .get_unscaled_mouse_pos(MouseMode::Discard)
            .and_then(|(x, y)| fraction(x, y, rect));
        // The pointer's first place is where it happened to be: only a move is sent.
        if let Some((x, y)) = at {
            if last_at.is_some_and(|l| l != (x, y)) {
                out.push(InputEvent::PointerMove { x, y });
                sent_at = at;
            }
            last_at = at;
        }
        for (i, (mb, b)) in [
            (MouseButton::Left, Button::Left),
            (MouseButton::Middle, Button::Middle),
            (MouseButton::Right, Button::Right),
        ]
        .into_iter()
        .enumerate()
        {
            let down = window.get_mouse_down(mb);
            // A press counts over the picture only; a release wherever it happens.
            if down != buttons[i] && (!down || at.is_some()) {
                buttons[i] = down;
                if let Some((x, y)) = at.filter(|_| down && at != sent_at) {
                    out.push(InputEvent::PointerMove { x, y });
                    sent_at = at;
                }
                out.push(InputEvent::PointerButton { button: b, down });
            }
        }
        if let Some((_, dy)) = window.get_scroll_wheel() {
            // minifb's steps are the window system's: one notch is 1 on X11 and 120 on Windows.
            wheel += if dy.abs() >= 60.0 { dy / 120.0 } else { dy };
            let steps = wheel.trunc();
            if steps != 0.0 {
                wheel -= steps;
                // Up the page is negative in the session's events.
                out.push(InputEvent::Wheel {
                    dx: 0,
                    dy: -(steps as i32),
                });
            }
        }
        // Keys that type nothing, modifiers too, go down and up as they do here, so that one can
        // be held on the target: Shift held over a click, an arrow held to repeat. The
        // modifiers held are keys of their own, so these carry none. A frame's keys come as
        // levels, not in order: presses, then releases, then the characters typed (which carry
        // their own case), so that "Shift up, b" in one frame types "b".
        let as_held = |k: Key| named(k).or_else(|| modifier(k));
        let pressed = window.get_keys_pressed(KeyRepeat::Yes);
        let released = window.get_keys_released();
        for name in pressed.iter().filter_map(|k| as_held(*k)) {
            out.push(key(name.to_owned(), true, &[]));
            down.insert(name);
        }
        let mods: Vec<&str> = [("Control", "ctrl"), ("Alt", "alt"), ("Shift", "shift")]
            .into_iter()
            .filter(|(held, _)| down.contains(held))
            .map(|(_, name)| name)
            .collect();
        let shortcut = down.contains("Control") || down.contains("Alt");
        for k in &pressed {
            // Ctrl+C and the like type no character: the letter, with its modifiers.
            if let Some(i) = LETTERS.iter().position(|l| l == k).filter(|_| shortcut) {
                let letter = char::from(b'a' + i as u8).to_string();
                out.push(key(letter.clone(), true, &mods));
                out.push(key(letter, false, &mods));
            }
        }
        for name in released.iter().filter_map(|k| as_held(*k)) {
            if down.remove(name) {
                out.push(key(name.to_owned(), false, &[]));
            }
        }
        // A window that lost the focus hears no more releases: what it sent down goes up now
        // (else Alt, after Alt+Tab, would stay held on the target).
        let active = window.is_active();
        if was_active && !active {
            for name in std::mem::take(&mut down) {
                out.push(key(name.to_owned(), false, &[]));
            }
        }
        was_active = active;
        let shortcut = down.contains("Control") || down.contains("Alt");
        for c in typed.borrow_mut().drain(..) {
            if shortcut {
                continue;
            }
            out.push(key(c.to_string(), true, &[]));
            out.push(key(c.to_string(), false, &[]));
        }
        if !out.is_empty() && events.send(WindowEvent::Input(out)).is_err() {
            break;
        }
    }
    let _ = events.send(WindowEvent::Closed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_over_the_picture_are_fractions_and_the_bars_are_nothing() {
        // A 16:9 picture in a square window: bars above and below.
        let r = picture_rect(1000.0, 1000.0, 1600.0, 900.0);
        assert_eq!(r, (0.0, 218.75, 1000.0, 562.5));
        assert_eq!(fraction(250.0, 500.0, r), Some((0.25, 0.5)));
        assert_eq!(fraction(500.0, 100.0, r), None, "over the top bar");
        assert_eq!(fraction(0.0, 218.75, r), Some((0.0, 0.0)));
    }
}
