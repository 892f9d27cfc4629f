//! Windows tells a window of every clipboard change (`WM_CLIPBOARDUPDATE`, once the window asked
//! with `AddClipboardFormatListener`): a message-only window on a thread of its own turns each
//! into a signal, so the agent reads the clipboard when it changed, not on a timer.
// Win32's window API is C: each block says why its call is sound.
#![allow(unsafe_code)]

use std::cell::RefCell;

use anyhow::{bail, Result};
use tokio::sync::mpsc;
use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
use windows_sys::Win32::System::DataExchange::AddClipboardFormatListener;
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DispatchMessageW, GetMessageW, RegisterClassW, HWND_MESSAGE,
    MSG, WM_CLIPBOARDUPDATE, WNDCLASSW,
};

thread_local! {
    /// Where this thread's window sends its signals (a window procedure is given no context).
    static SIGNALS: RefCell<Option<mpsc::Sender<()>>> = const { RefCell::new(None) };
}

unsafe extern "system" fn on_message(window: HWND, message: u32, w: WPARAM, l: LPARAM) -> LRESULT {
    if message == WM_CLIPBOARDUPDATE {
        SIGNALS.with(|s| {
            if let Some(tx) = &*s.borrow() {
                // A full queue already holds a signal: the reader will look anyway.
                let _ = tx.try_send(());
            }
        });
        return 0;
    }
    // SAFETY: the arguments are those Windows called this procedure with.
    unsafe { DefWindowProcW(window, message, w, l) }
}

/// Sends on `tx` at each clipboard change, from this thread, until the process ends; an error
/// when Windows refuses the window or the listener.
pub(super) fn clipboard_changes(tx: &mpsc::Sender<()>) -> Result<()> {
    SIGNALS.with(|s| *s.borrow_mut() = Some(tx.clone()));
    let class: Vec<u16> = "udc-clipboard-listener\0".encode_utf16().collect();
    // SAFETY: a null name asks for the module of this program itself.
    let instance = unsafe { GetModuleHandleW(std::ptr::null()) };
    let wc = WNDCLASSW {
        lpfnWndProc: Some(on_message),
        hInstance: instance,
        lpszClassName: class.as_ptr(),
        ..WNDCLASSW::default()
    };
    // SAFETY: `wc` and the class name it points to outlive the call (the name is copied).
    if unsafe { RegisterClassW(&wc) } == 0 {
        bail!("Windows refused the clipboard listener's window class");
    }
    // SAFETY: a message-only window (parent HWND_MESSAGE) of the class just registered; every
    // pointer is null or the live class name.
    let window = unsafe {
        CreateWindowExW(
            0,
            class.as_ptr(),
            std::ptr::null(),
            0,
            0,
            0,
            0,
            0,
            HWND_MESSAGE,
            std::ptr::null_mut(),
            instance,
            std::ptr::null(),
        )
    };
    if window.is_null() {
        bail!("Windows refused the clipboard listener's window");
    }
    // SAFETY: `window` is the window just made, owned by this thread.
    if unsafe { AddClipboardFormatListener(window) } == 0 {
        bail!("Windows refused to report clipboard changes");
    }
    // A copy made before the listener was in place is looked at too (one already seen is
    // recognised by its fingerprint).
    let _ = tx.try_send(());
    let mut message = MSG::default();
    // SAFETY: `message` is ours to fill; the window procedure runs on this thread, inside
    // GetMessageW (sent messages) or DispatchMessageW (posted ones).
    while unsafe { GetMessageW(&mut message, std::ptr::null_mut(), 0, 0) } > 0 {
        if tx.is_closed() {
            return Ok(());
        }
        // SAFETY: a message GetMessageW just filled in.
        unsafe { DispatchMessageW(&message) };
    }
    bail!("the clipboard listener's message loop ended")
}
