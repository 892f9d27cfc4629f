//! Windows: one screen through DXGI desktop duplication, the fast path. The desktop's
//! own image comes from the GPU only when something on screen changed, already BGRA, so a still
//! screen costs nothing to capture and a changing one one GPU→CPU copy (GDI's BitBlt reads the
//! whole screen every time). Needs Windows 8 or later and a display driver; where either is
//! missing — a remote desktop session, Wine — `open` fails and GDI is used instead.
// The Direct3D and DXGI interfaces are COM, reached through the `windows` crate's unsafe calls:
// each block says why it is sound.
#![allow(unsafe_code)]

use anyhow::{anyhow, bail, Result};

use super::Area;
use windows::core::Interface;
use windows::Win32::Foundation::HMODULE;
use windows::Win32::Graphics::Direct3D::D3D_DRIVER_TYPE_UNKNOWN;
use windows::Win32::Graphics::Direct3D11::{
    D3D11CreateDevice, ID3D11Device, ID3D11DeviceContext, ID3D11Texture2D, D3D11_CPU_ACCESS_READ,
    D3D11_CREATE_DEVICE_BGRA_SUPPORT, D3D11_MAPPED_SUBRESOURCE, D3D11_MAP_READ, D3D11_SDK_VERSION,
    D3D11_TEXTURE2D_DESC, D3D11_USAGE_STAGING,
};
use windows::Win32::Graphics::Dxgi::Common::{
    DXGI_FORMAT_B8G8R8A8_UNORM, DXGI_MODE_ROTATION_IDENTITY, DXGI_MODE_ROTATION_UNSPECIFIED,
    DXGI_SAMPLE_DESC,
};
use windows::Win32::Graphics::Dxgi::{
    CreateDXGIFactory1, IDXGIAdapter1, IDXGIFactory1, IDXGIOutput1, IDXGIOutputDuplication,
    IDXGIResource, DXGI_ERROR_WAIT_TIMEOUT, DXGI_OUTDUPL_FRAME_INFO,
};

/// How long `open` waits for the desktop's first image.
const FIRST_FRAME_WITHIN_MS: u32 = 500;

pub struct DxgiCapture {
    context: ID3D11DeviceContext,
    duplication: IDXGIOutputDuplication,
    /// Where each new image is copied for the CPU to read.
    staging: ID3D11Texture2D,
    width: usize,
    height: usize,
    /// The last image, BGRX rows without padding (the encoder's layout).
    bgrx: Vec<u8>,
}

impl DxgiCapture {
    /// Duplicates the screen that is `area` of the desktop.
    pub fn open(area: Area) -> Result<DxgiCapture> {
        let (adapter, output) = output_at(area)?;
        let mut device: Option<ID3D11Device> = None;
        let mut context: Option<ID3D11DeviceContext> = None;
        // SAFETY: the out-pointers are to locals that outlive the call; an adapter given
        // requires D3D_DRIVER_TYPE_UNKNOWN and no software module.
        unsafe {
            D3D11CreateDevice(
                &adapter,
                D3D_DRIVER_TYPE_UNKNOWN,
                HMODULE::default(),
                D3D11_CREATE_DEVICE_BGRA_SUPPORT,
                None,
                D3D11_SDK_VERSION,
                Some(&mut device),
                None,
                Some(&mut context),
            )
        }
        .map_err(|e| anyhow!("no Direct3D 11 device: {e}"))?;
        let (device, context) = device
            .zip(context)
            .ok_or_else(|| anyhow!("no Direct3D 11 device"))?;
        // SAFETY: a plain COM call on live interfaces.
        let duplication = unsafe { output.DuplicateOutput(&device) }
            .map_err(|e| anyhow!("no desktop duplication: {e}"))?;
        // SAFETY: as above; GetDesc only fills the value it returns.
        let desc = unsafe { duplication.GetDesc() };
        // A rotated screen's image comes unrotated, in the panel's own shape: GDI turns it.
        if !matches!(
            desc.Rotation,
            DXGI_MODE_ROTATION_IDENTITY | DXGI_MODE_ROTATION_UNSPECIFIED
        ) {
            bail!("the screen is rotated");
        }
        let mode = desc.ModeDesc;
        if mode.Width == 0 || mode.Height == 0 {
            bail!("a {}x{} screen", mode.Width, mode.Height);
        }
        let (width, height) = (mode.Width as usize, mode.Height as usize);
        let desc = D3D11_TEXTURE2D_DESC {
            Width: mode.Width,
            Height: mode.Height,
            MipLevels: 1,
            ArraySize: 1,
            Format: DXGI_FORMAT_B8G8R8A8_UNORM,
            SampleDesc: DXGI_SAMPLE_DESC {
                Count: 1,
                Quality: 0,
            },
            Usage: D3D11_USAGE_STAGING,
            BindFlags: 0,
            CPUAccessFlags: D3D11_CPU_ACCESS_READ.0 as u32,
            MiscFlags: 0,
        };
        let mut staging: Option<ID3D11Texture2D> = None;
        // SAFETY: `desc` and the out-pointer are locals that outlive the call; no initial data.
        unsafe { device.CreateTexture2D(&desc, None, Some(&mut staging)) }
            .map_err(|e| anyhow!("a texture to read the screen through: {e}"))?;
        let staging = staging.ok_or_else(|| anyhow!("a texture to read the screen through"))?;
        let mut capture = DxgiCapture {
            context,
            duplication,
            staging,
            width,
            height,
            bgrx: vec![0; width * height * 4],
        };
        // The first image after duplicating is the whole desktop: wait for it, so a still
        // screen is not sent black.
        if !capture.next(FIRST_FRAME_WITHIN_MS)? {
            bail!("the desktop sent no first image");
        }
        Ok(capture)
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Hands `use_pixels` the screen as it is now: the last image, updated if it changed.
    /// Fails when the duplication is lost (a desktop switch: the lock screen, a UAC prompt; a
    /// mode change): the caller opens a new capture then.
    pub fn capture_with<R>(&mut self, use_pixels: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.next(0)?;
        Ok(use_pixels(&self.bgrx))
    }

    /// Takes the next image if one comes within `wait_ms`; whether one came.
    fn next(&mut self, wait_ms: u32) -> Result<bool> {
        let mut info = DXGI_OUTDUPL_FRAME_INFO::default();
        let mut resource: Option<IDXGIResource> = None;
        // SAFETY: both out-pointers are to locals that outlive the call.
        match unsafe {
            self.duplication
                .AcquireNextFrame(wait_ms, &mut info, &mut resource)
        } {
            Ok(()) => {}
            Err(e) if e.code() == DXGI_ERROR_WAIT_TIMEOUT => return Ok(false),
            Err(e) => bail!("desktop duplication: {e}"),
        }
        // A frame acquired must be released, whatever happens while reading it.
        let read = if info.LastPresentTime != 0 {
            self.read(resource)
        } else {
            // Only the pointer moved: the desktop's image is as it was.
            Ok(())
        };
        // SAFETY: a frame was acquired above and not yet released.
        let released = unsafe { self.duplication.ReleaseFrame() };
        read?;
        released.map_err(|e| anyhow!("desktop duplication: {e}"))?;
        Ok(info.LastPresentTime != 0)
    }

    /// Copies the acquired desktop image into `bgrx`.
    fn read(&mut self, resource: Option<IDXGIResource>) -> Result<()> {
        let texture: ID3D11Texture2D = resource
            .ok_or_else(|| anyhow!("desktop duplication gave no image"))?
            .cast()
            .map_err(|e| anyhow!("desktop duplication: {e}"))?;
        let mut mapped = D3D11_MAPPED_SUBRESOURCE::default();
        // SAFETY: both textures are live and of the same size and format (the staging one was
        // made from the duplication's mode); Map's out-pointer is a local.
        unsafe {
            self.context.CopyResource(&self.staging, &texture);
            self.context
                .Map(&self.staging, 0, D3D11_MAP_READ, 0, Some(&mut mapped))
                .map_err(|e| anyhow!("reading the screen: {e}"))?;
        }
        let row = self.width * 4;
        let pitch = mapped.RowPitch as usize;
        if pitch >= row && !mapped.pData.is_null() {
            // SAFETY: a mapped staging texture is `RowPitch` bytes per row for `height` rows,
            // readable until Unmap below; no other reference to it exists.
            let pixels = unsafe {
                std::slice::from_raw_parts(
                    mapped.pData.cast::<u8>(),
                    pitch * (self.height - 1) + row,
                )
            };
            for (y, out) in self.bgrx.chunks_exact_mut(row).enumerate() {
                out.copy_from_slice(&pixels[y * pitch..y * pitch + row]);
            }
        }
        // SAFETY: mapped above; `pixels` is out of scope.
        unsafe { self.context.Unmap(&self.staging, 0) };
        if pitch < row {
            bail!("the screen's rows are {pitch} bytes, under {row}");
        }
        Ok(())
    }
}

/// The adapter and output that show `area` of the desktop.
fn output_at(area: Area) -> Result<(IDXGIAdapter1, IDXGIOutput1)> {
    // SAFETY: creates a factory; no arguments.
    let factory: IDXGIFactory1 =
        unsafe { CreateDXGIFactory1() }.map_err(|e| anyhow!("no DXGI: {e}"))?;
    for a in 0.. {
        // SAFETY: enumeration on a live factory; it fails past the last adapter.
        let Ok(adapter) = (unsafe { factory.EnumAdapters1(a) }) else {
            break;
        };
        for o in 0.. {
            // SAFETY: enumeration on a live adapter; it fails past the last output.
            let Ok(output) = (unsafe { adapter.EnumOutputs(o) }) else {
                break;
            };
            // SAFETY: a plain COM call on a live output, which fills the value it returns.
            let Ok(desc) = (unsafe { output.GetDesc() }) else {
                continue;
            };
            let r = desc.DesktopCoordinates;
            let at = (
                area.x,
                area.y,
                area.x + area.width as i32,
                area.y + area.height as i32,
            );
            if desc.AttachedToDesktop.as_bool() && (r.left, r.top, r.right, r.bottom) == at {
                let output = output
                    .cast::<IDXGIOutput1>()
                    .map_err(|e| anyhow!("DXGI 1.2 (Windows 8) is needed: {e}"))?;
                return Ok((adapter, output));
            }
        }
    }
    bail!("no display output shows {area:?}")
}
