//! Windows: input replayed with `SendInput` (through enigo). Characters travel as themselves
//! (`KEYEVENTF_UNICODE`), so what the viewer's layout typed is what arrives, whatever this
//! device's layout; with Ctrl, Alt or Meta held they go as the key that types them, so shortcuts
//! (Ctrl+C) still work.

use std::cell::RefCell;

use anyhow::{anyhow, bail, Result};
use enigo::{Axis, Coordinate, Direction, Enigo, Key, Keyboard, Mouse, Settings};

use super::{to_pixel, Button, InputEvent};

/// What a session holds down, to let go of when it ends.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Key(Key),
    Button(enigo::Button),
}

pub struct SendInputInjector {
    enigo: RefCell<Enigo>,
    width: u16,
    height: u16,
    held: RefCell<Vec<Held>>,
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
        "shift" => Key::Shift,
        "control" | "ctrl" => Key::Control,
        "alt" => Key::Alt,
        "meta" | "super" => Key::Meta,
        "capslock" => Key::CapsLock,
        "space" => Key::Space,
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
        _ => return None,
    })
}

/// Modifiers that make a character a shortcut rather than text (Shift and AltGr only choose
/// which character the viewer's key typed).
fn is_shortcut(modifiers: &[String]) -> bool {
    modifiers
        .iter()
        .any(|m| !matches!(m.to_ascii_lowercase().as_str(), "shift" | "altgraph"))
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
        let side = |v: i32| u16::try_from(v).map_err(|_| anyhow!("a screen side of {v} pixels"));
        Ok(SendInputInjector {
            enigo: RefCell::new(enigo),
            width: side(w)?,
            height: side(h)?,
            held: RefCell::default(),
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

    /// Lets go of every key and button still held: the session is over.
    pub fn release_all(&self) -> Result<()> {
        let held: Vec<Held> = self.held.borrow().iter().rev().copied().collect();
        held.into_iter().try_for_each(|h| self.press(h, false))
    }

    pub fn inject(&self, event: &InputEvent) -> Result<()> {
        let failed = |e: enigo::InputError| anyhow!("input: {e}");
        match event {
            InputEvent::PointerMove { x, y } => self
                .enigo
                .borrow_mut()
                .move_mouse(
                    i32::from(to_pixel(*x, self.width)),
                    i32::from(to_pixel(*y, self.height)),
                    Coordinate::Abs,
                )
                .map_err(failed),
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
                key,
                down,
                modifiers,
            } => {
                let mut chars = key.chars();
                let single = match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => None,
                };
                let k = match (named_key(key), single) {
                    (Some(k), _) => k,
                    // Text: the character itself, typed once, when the key goes down.
                    (None, Some(c)) if !is_shortcut(modifiers) => {
                        return if *down {
                            self.enigo.borrow_mut().text(&c.to_string()).map_err(failed)
                        } else {
                            Ok(())
                        };
                    }
                    // A shortcut: the key that types the character, with its modifiers.
                    (None, Some(c)) => Key::Unicode(c.to_lowercase().next().unwrap_or(c)),
                    (None, None) => bail!("unknown key {key:?}"),
                };
                let mods = modifiers
                    .iter()
                    .filter(|m| !m.eq_ignore_ascii_case("altgraph"))
                    .map(|m| named_key(m).ok_or_else(|| anyhow!("unknown modifier {m:?}")))
                    .collect::<Result<Vec<Key>>>()?;
                if *down {
                    for m in &mods {
                        self.press(Held::Key(*m), true)?;
                    }
                    self.press(Held::Key(k), true)
                } else {
                    self.press(Held::Key(k), false)?;
                    mods.iter()
                        .rev()
                        .try_for_each(|m| self.press(Held::Key(*m), false))
                }
            }
        }
    }
}

impl Drop for SendInputInjector {
    fn drop(&mut self) {
        // Best effort: nothing this session pressed stays down.
        let _ = self.release_all();
    }
}
