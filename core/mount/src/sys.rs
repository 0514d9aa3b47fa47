//! The loop-device ioctls, typed: the only `unsafe` code in fspack.
//!
//! `rustix::ioctl` needs the caller to promise that the opcode and the argument type agree with
//! the driver; each wrapper below makes that promise for one ioctl of `<linux/loop.h>` (structs
//! and numbers from `linux-raw-sys`, pregenerated, so no bindgen/libclang at build time).

use std::ffi::c_void;
use std::io;
use std::os::fd::AsFd;

use linux_raw_sys::loop_device::{LOOP_CHANGE_FD, LOOP_CONFIGURE, LOOP_CTL_GET_FREE, loop_config};
use rustix::ioctl::{IntegerSetter, Ioctl, IoctlOutput, Opcode, Setter, ioctl};

/// `LOOP_CTL_GET_FREE`: the ioctl's return value is the number of a free (possibly new) device.
struct GetFree;

// SAFETY: LOOP_CTL_GET_FREE takes no argument (the pointer is ignored by the driver) and returns
// the device number as the ioctl's result, which `output_from_ptr` passes through unchanged.
unsafe impl Ioctl for GetFree {
    type Output = u32;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE as Opcode
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<u32> {
        // A successful ioctl never returns a negative number (rustix turns those into errors).
        Ok(out as u32)
    }
}

/// Asks `/dev/loop-control` for the number of a free loop device.
pub(crate) fn loop_ctl_get_free(control: impl AsFd) -> io::Result<u32> {
    // SAFETY: `GetFree` describes LOOP_CTL_GET_FREE exactly (no argument, integer result), and the
    // caller passes an fd of /dev/loop-control; on any other fd the kernel answers ENOTTY.
    Ok(unsafe { ioctl(control, GetFree) }?)
}

/// Binds the backing file `backing_fd` to the loop device `dev` in one step (`LOOP_CONFIGURE`,
/// Linux 5.8+), with the flags and logical block size given.
pub(crate) fn loop_configure(
    dev: impl AsFd,
    backing_fd: u32,
    flags: u32,
    block_size: u32,
    name: &[u8],
) -> io::Result<()> {
    // SAFETY: `loop_config` is a plain C struct of integers and byte arrays, for which all-zero
    // bytes are a valid value (and the value the kernel expects in the reserved fields).
    let mut cfg: loop_config = unsafe { std::mem::zeroed() };
    cfg.fd = backing_fd;
    cfg.block_size = block_size;
    cfg.info.lo_flags = flags;
    // lo_file_name is informational (shown by losetup); keep it NUL-terminated.
    let n = name.len().min(cfg.info.lo_file_name.len() - 1);
    cfg.info.lo_file_name[..n].copy_from_slice(&name[..n]);
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` through the pointer, and `Setter` passes
    // a pointer to exactly that struct, alive for the whole call. The kernel does not keep the
    // pointer. It only reads the backing fd number from it, which the caller keeps open.
    let op = unsafe { Setter::<{ LOOP_CONFIGURE as Opcode }, loop_config>::new(cfg) };
    // SAFETY: see above; `dev` is an fd of a loop block device (anything else answers ENOTTY).
    Ok(unsafe { ioctl(dev, op) }?)
}

/// Swaps the backing file of the bound, read-only loop device `dev` for `new_backing`
/// (`LOOP_CHANGE_FD`). The kernel refuses (`EINVAL`) unless the device is read-only and the new
/// file has the old one's size (drivers/block/loop.c, `loop_change_fd`); I/O in flight is
/// drained first, so readers of a mount on the device never see the switch.
pub(crate) fn loop_change_fd(dev: impl AsFd, new_backing: impl AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = new_backing.as_fd().as_raw_fd();
    // SAFETY: LOOP_CHANGE_FD takes the new backing file's descriptor as its integer argument (not
    // a pointer); `fd` is a valid open descriptor that the caller keeps open for the whole call,
    // and a non-negative `RawFd` fits `usize`.
    let op = unsafe { IntegerSetter::<{ LOOP_CHANGE_FD as Opcode }>::new_usize(fd as usize) };
    // SAFETY: `dev` is an fd of a loop block device (anything else answers ENOTTY), and the kernel
    // takes its own reference on the new file, so nothing here must outlive the call.
    Ok(unsafe { ioctl(dev, op) }?)
}
