//! Windows: input replayed with `SendInput` (through enigo). Characters travel as themselves
//! (`KEYEVENTF_UNICODE`), so what the viewer's layout typed is what arrives, whatever this
//! device's layout; with Ctrl, Alt or Meta held they go as the key that types them on this
//! device's layout (and the Shift it needs), so shortcuts (Ctrl+C, Ctrl+Shift+T) still work.
// VkKeyScanW, which enigo calls too but hands on with its shift state still in the key code.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use enigo::{Axis, Direction, Enigo, Key, Keyboard, Mouse, Settings};

use super::{at, Button, InputEvent};
use crate::screen::Area;

/// What a session holds down, to let go of when it ends.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Key(Key),
    Button(enigo::Button),
}

pub struct SendInputInjector {
    enigo: RefCell<Enigo>,
    /// The part of the desktop the viewer sees, which pointer positions are fractions of.
    area: std::cell::Cell<Area>,
    held: RefCell<Vec<Held>>,
    /// What each key's press pressed (by the name it came with), so its release lets go of
    /// exactly that, whatever modifiers the release names: nothing for a typed character.
    pressed: RefCell<HashMap<String, Vec<Key>>>,
}

/// What a key press becomes.
enum Press {
    /// A character, typed as itself.
    Text(char),
    /// Keys pressed in order (modifiers first) and let go of in reverse.
    Keys(Vec<Key>),
}

/// The Windows key for a key name as browsers' `KeyboardEvent.key` spells it (any case).
fn named_key(name: &str) -> Option<Key> {
    Some(match name.to_ascii_lowercase().as_str() {
        "enter" | "return" => Key::Return,
        "backspace" => Key::Backspace,
        "tab" => Key::Tab,
        "escape" | "esc" => Key::Escape,
        "delete" => Key::Delete,
        "insert" => Key::Insert,
        "home" => Key::Home,
        "end" => Key::End,
        "pageup" | "prior" => Key::PageUp,
        "pagedown" | "next" => Key::PageDown,
        "arrowleft" | "left" => Key::LeftArrow,
        "arrowup" | "up" => Key::UpArrow,
        "arrowright" | "right" => Key::RightArrow,
        "arrowdown" | "down" => Key::DownArrow,
        "capslock" => Key::CapsLock,
        // A key, not the character: Space presses the focused button.
        " " | "space" => Key::Space,
        "f1" => Key::F1,
        "f2" => Key::F2,
        "f3" => Key::F3,
        "f4" => Key::F4,
        "f5" => Key::F5,
        "f6" => Key::F6,
        "f7" => Key::F7,
        "f8" => Key::F8,
        "f9" => Key::F9,
        "f10" => Key::F10,
        "f11" => Key::F11,
        "f12" => Key::F12,
        other => return modifier_key(other).ok().flatten(),
    })
}

/// A modifier's key; none for AltGr (it only chose the character the viewer typed); an error
/// for what is no modifier.
fn modifier_key(name: &str) -> Result<Option<Key>> {
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "shift" => Key::Shift,
        "control" | "ctrl" => Key::Control,
        "alt" => Key::Alt,
        "meta" | "super" => Key::Meta,
        "altgraph" => return Ok(None),
        _ => bail!("{name:?} is no modifier"),
    }))
}

/// The key that types `c` on this device's layout, with the modifiers it needs.
fn key_typing(c: char) -> Result<Vec<Key>> {
    let mut utf16 = [0u16; 2];
    let [unit] = c.encode_utf16(&mut utf16) else {
        bail!("no key types {c:?}");
    };
    // SAFETY: takes a character by value and reads the calling thread's layout; no memory.
    let scan = unsafe { windows_sys::Win32::UI::Input::KeyboardAndMouse::VkKeyScanW(*unit) };
    if scan < 0 {
        bail!("no key on this keyboard types {c:?}");
    }
    let [vk, shift_state] = (scan as u16).to_le_bytes();
    let mut keys: Vec<Key> = [(1, Key::Shift), (2, Key::Control), (4, Key::Alt)]
        .into_iter()
        .filter(|(bit, _)| shift_state & bit != 0)
        .map(|(_, k)| k)
        .collect();
    keys.push(Key::Other(u32::from(vk)));
    Ok(keys)
}

/// What pressing `key` with `modifiers` does.
fn press_of(key: &str, modifiers: &[String]) -> Result<Press> {
    let mut mods = Vec::new();
    for m in modifiers {
        if let Some(k) = modifier_key(m)? {
            mods.push(k);
        }
    }
    let mut chars = key.chars();
    let single = match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let shortcut = mods.iter().any(|k| *k != Key::Shift);
    let keys = match (named_key(key), single) {
        (Some(k), _) => vec![k],
        (None, Some(c)) if !shortcut => return Ok(Press::Text(c)),
        (None, Some(c)) => key_typing(c)?,
        (None, None) => bail!("unknown key {key:?}"),
    };
    for k in keys {
        if !mods.contains(&k) {
            mods.push(k);
        }
    }
    Ok(Press::Keys(mods))
}

/// Moves the pointer to (`x`, `y`) on the desktop, whichever screen that is on. (enigo's
/// absolute moves reach the primary screen only: without MOUSEEVENTF_VIRTUALDESK, Windows maps
/// them onto it.)
fn move_pointer(x: i32, y: i32) -> Result<()> {
    use windows_sys::Win32::UI::Input::KeyboardAndMouse::{
        SendInput, INPUT, INPUT_0, INPUT_MOUSE, MOUSEEVENTF_ABSOLUTE, MOUSEEVENTF_MOVE,
        MOUSEEVENTF_VIRTUALDESK, MOUSEINPUT,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        GetSystemMetrics, SM_CXVIRTUALSCREEN, SM_CYVIRTUALSCREEN, SM_XVIRTUALSCREEN,
        SM_YVIRTUALSCREEN,
    };
    // SAFETY: plain queries of the desktop's bounds; no memory is passed.
    let (left, top, width, height) = unsafe {
        (
            GetSystemMetrics(SM_XVIRTUALSCREEN),
            GetSystemMetrics(SM_YVIRTUALSCREEN),
            GetSystemMetrics(SM_CXVIRTUALSCREEN),
            GetSystemMetrics(SM_CYVIRTUALSCREEN),
        )
    };
    // Absolute moves are 0..=65535 across the desktop, whatever its pixels.
    let scale = |v: i32, origin: i32, side: i32| {
        (i64::from(v - origin) * 65535 / i64::from((side - 1).max(1))).clamp(0, 65535) as i32
    };
    let input = INPUT {
        r#type: INPUT_MOUSE,
        Anonymous: INPUT_0 {
            mi: MOUSEINPUT {
                dx: scale(x, left, width),
                dy: scale(y, top, height),
                mouseData: 0,
                dwFlags: MOUSEEVENTF_MOVE | MOUSEEVENTF_ABSOLUTE | MOUSEEVENTF_VIRTUALDESK,
                time: 0,
                dwExtraInfo: 0,
            },
        },
    };
    // SAFETY: one INPUT, fully initialised, with its size; SendInput only reads it.
    let sent = unsafe { SendInput(1, &input, std::mem::size_of::<INPUT>() as i32) };
    if sent != 1 {
        bail!(
            "input: the pointer was not moved ({})",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

impl SendInputInjector {
    /// `display` names an X display on Linux; Windows has one input desktop per session.
    pub fn open(_display: Option<&str>) -> Result<SendInputInjector> {
        let settings = Settings {
            // This type lets go of what it holds itself (`release_all`), when the session ends.
            release_keys_when_dropped: false,
            ..Settings::default()
        };
        let enigo = Enigo::new(&settings).map_err(|e| anyhow!("input: {e}"))?;
        let (w, h) = enigo
            .main_display()
            .map_err(|e| anyhow!("the screen's size: {e}"))?;
        let side = |v: i32| u32::try_from(v).map_err(|_| anyhow!("a screen side of {v} pixels"));
        let area = Area {
            x: 0,
            y: 0,
            width: side(w)?,
            height: side(h)?,
        };
        Ok(SendInputInjector {
            enigo: RefCell::new(enigo),
            area: std::cell::Cell::new(area),
            held: RefCell::default(),
            pressed: RefCell::default(),
        })
    }

    fn press(&self, what: Held, down: bool) -> Result<()> {
        let direction = if down {
            Direction::Press
        } else {
            Direction::Release
        };
        let mut enigo = self.enigo.borrow_mut();
        match what {
            Held::Key(k) => enigo.key(k, direction),
            Held::Button(b) => enigo.button(b, direction),
        }
        .map_err(|e| anyhow!("input: {e}"))?;
        let mut held = self.held.borrow_mut();
        held.retain(|h| *h != what);
        if down {
            held.push(what);
        }
        Ok(())
    }

    /// Lets go of every key and button still held: the session is over. Each is tried, though
    /// one fails (SendInput refuses while an elevated window has the focus).
    pub fn release_all(&self) -> Result<()> {
        self.pressed.borrow_mut().clear();
        let held: Vec<Held> = self.held.borrow().iter().rev().copied().collect();
        self.release(held.into_iter())
    }

    /// Lets go of each of `what`; the first failure, after trying them all.
    fn release(&self, what: impl Iterator<Item = Held>) -> Result<()> {
        let tried: Vec<Result<()>> = what.map(|h| self.press(h, false)).collect();
        tried.into_iter().collect()
    }

    /// The part of the desktop the viewer sees from now on.
    pub fn set_area(&self, area: Area) {
        self.area.set(area);
    }

    pub fn inject(&self, event: &InputEvent) -> Result<()> {
        let failed = |e: enigo::InputError| anyhow!("input: {e}");
        match event {
            InputEvent::PointerMove { x, y } => {
                let (x, y) = at(self.area.get(), *x, *y);
                move_pointer(x, y)
            }
            InputEvent::PointerButton { button, down } => {
                let button = match button {
                    Button::Left => enigo::Button::Left,
                    Button::Middle => enigo::Button::Middle,
                    Button::Right => enigo::Button::Right,
                };
                self.press(Held::Button(button), *down)
            }
            InputEvent::Wheel { dx, dy } => {
                // As many notches as on X11 at most; enigo scrolls down and right for positive steps.
                let mut enigo = self.enigo.borrow_mut();
                if *dy != 0 {
                    enigo
                        .scroll((*dy).clamp(-20, 20), Axis::Vertical)
                        .map_err(failed)?;
                }
                if *dx != 0 {
                    enigo
                        .scroll((*dx).clamp(-20, 20), Axis::Horizontal)
                        .map_err(failed)?;
                }
                Ok(())
            }
            InputEvent::Key {
                key, down: false, ..
            } => {
                let pressed = self.pressed.borrow_mut().remove(key).unwrap_or_default();
                self.release(pressed.into_iter().rev().map(Held::Key))
            }
            InputEvent::Key {
                key,
                down: true,
                modifiers,
            } => match press_of(key, modifiers)? {
                Press::Text(c) => self.enigo.borrow_mut().text(&c.to_string()).map_err(failed),
                Press::Keys(keys) => {
                    // Held and pressed again: the key repeats; its release still lets go of
                    // what the first press pressed.
                    let repeated = self
                        .pressed
                        .borrow()
                        .get(key)
                        .and_then(|k| k.last().copied());
                    if let Some(k) = repeated {
                        return self.press(Held::Key(k), true);
                    }
                    // Modifiers already down (the viewer's own Shift key event) stay theirs.
                    let keys: Vec<Key> = keys
                        .into_iter()
                        .filter(|k| !self.held.borrow().contains(&Held::Key(*k)))
                        .collect();
                    for k in &keys {
                        self.press(Held::Key(*k), true)?;
                    }
                    self.pressed.borrow_mut().insert(key.clone(), keys);
                    Ok(())
                }
            },
        }
    }
}

impl Drop for SendInputInjector {
    fn drop(&mut self) {
        // Best effort: nothing this session pressed stays down.
        let _ = self.release_all();
    }
}
