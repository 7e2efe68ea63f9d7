//! The receive window: the one the SYN offers and its scale, the one every later
//! segment offers (never shrinking what was offered), and how the buffer it comes from
//! is reserved and grown.
//!
//! Mirrors, in Linux 6.18: `tcp_select_initial_window`, `__tcp_select_window`,
//! `tcp_select_window` (net/ipv4/tcp_output.c), `tcp_init_buffer_space`,
//! `tcp_grow_window` (net/ipv4/tcp_input.c), `tcp_set_window_clamp` (net/ipv4/tcp.c),
//! and `tcp_space`/`tcp_full_space`/`tcp_win_from_space`/`tcp_receive_window`
//! (include/net/tcp.h).

use super::recv::SOCK_MIN_RCVBUF;
use super::{Tcb, TCP_DEFAULT_SCALING_RATIO, TCP_MAX_WSCALE, TCP_RMEM_TO_WIN_SCALE};
use crate::config::Config;

/// The result of [`select_initial_window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialWindow {
    /// `rcv_wnd`.
    pub rcv_wnd: u32,
    /// `rcv_wscale`.
    pub rcv_wscale: u8,
    /// `window_clamp` after the call.
    pub window_clamp: u32,
}

/// Mirrors `tcp_select_initial_window` (net/ipv4/tcp_output.c).
///
/// `space` is `tcp_full_space(sk)`, `mss` the advertised MSS (minus 12 with a
/// recent timestamp). A zero `window_clamp` means `65535 << 14`.
#[allow(clippy::too_many_arguments)]
pub fn select_initial_window(
    cfg: &Config,
    space: u32,
    mss: u32,
    window_clamp: u32,
    wscale_ok: bool,
    init_rcv_wnd: u32,
) -> InitialWindow {
    let mut window_clamp = if window_clamp == 0 {
        65535u32 << TCP_MAX_WSCALE
    } else {
        window_clamp
    };
    let mut space = space.min(window_clamp);
    if space > mss {
        space = space / mss * mss;
    }
    let mut rcv_wnd = if cfg.tcp_workaround_signed_windows {
        space.min(32767)
    } else {
        space
    };
    if init_rcv_wnd != 0 {
        rcv_wnd = rcv_wnd.min(init_rcv_wnd * mss);
    }
    let mut rcv_wscale = 0u8;
    if wscale_ok {
        let s = space
            .max(cfg.tcp_rmem[2])
            .max(cfg.rmem_max)
            .min(window_clamp);
        let ilog = 31 - s.max(1).leading_zeros() as i32;
        rcv_wscale = (ilog - 15).clamp(0, TCP_MAX_WSCALE as i32) as u8;
    }
    window_clamp = window_clamp.min(65535u32 << rcv_wscale);
    InitialWindow {
        rcv_wnd,
        rcv_wscale,
        window_clamp,
    }
}

/// `tcp_full_space`: `sk_rcvbuf * scaling_ratio >> 8` with the initial ratio (half).
pub fn full_space(rcvbuf: u32) -> u32 {
    ((rcvbuf as u64 * TCP_DEFAULT_SCALING_RATIO as u64) >> 8) as u32
}

impl Tcb {
    /// `tcp_win_from_space` (include/net/tcp.h): the window that `space`
    /// bytes of buffer hold at the current `scaling_ratio`.
    fn win_from_space(&self, space: i64) -> i64 {
        (space * self.scaling_ratio as i64) >> TCP_RMEM_TO_WIN_SCALE
    }

    /// `tcp_space`: the window the unused part of `sk_rcvbuf` holds
    /// (`sk_rcvbuf - sk_rmem_alloc`; the backlog is always empty here).
    pub fn tcp_space(&self) -> i64 {
        self.win_from_space(self.rcvbuf as i64 - self.rmem_alloc as i64)
    }

    /// `tcp_full_space`: the window all of `sk_rcvbuf` holds.
    pub fn tcp_full_space(&self) -> i64 {
        self.win_from_space(self.rcvbuf as i64)
    }

    /// `tcp_receive_window` (include/net/tcp.h): what is left of the window
    /// last advertised, `rcv_wup + rcv_wnd - rcv_nxt`, at least 0.
    pub fn receive_window(&self) -> u32 {
        let win = self
            .rcv_wup
            .wrapping_add(self.rcv_wnd)
            .wrapping_sub(self.rcv_nxt) as i32;
        win.max(0) as u32
    }

    /// Mirrors `__tcp_select_window` (net/ipv4/tcp_output.c, with
    /// `tcp_shrink_window` = 0): the window the free receive space allows,
    /// capped by `rcv_ssthresh`; rounded up to the scale unit with window
    /// scaling, kept or rounded down to a multiple of `rcv_mss` without.
    /// Clears `icsk_ack.quick` when less than half the space is free.
    pub fn raw_select_window(&mut self) -> u32 {
        let mut mss = self.ack.rcv_mss as i64;
        let mut free_space = self.tcp_space();
        let allowed_space = self.tcp_full_space();
        let full_space = (self.window_clamp as i64).min(allowed_space);
        let unit = 1i64 << self.rcv_wscale;
        if mss > full_space {
            mss = full_space;
            if mss <= 0 {
                return 0;
            }
        }
        if free_space < full_space >> 1 {
            self.ack.quick = 0;
            free_space = free_space / unit * unit;
            if free_space < allowed_space >> 4 || free_space < mss {
                return 0;
            }
        }
        free_space = free_space.min(self.rcv_ssthresh as i64);
        let window = if self.rcv_wscale != 0 {
            // ALIGN(free_space, 1 << rcv_wscale): never scaled away to 0.
            (free_space + unit - 1) / unit * unit
        } else {
            let window = self.rcv_wnd as i64;
            if mss <= 0 {
                window.min(free_space.max(0))
            } else if window <= free_space - mss || window > free_space {
                free_space / mss * mss
            } else if mss == full_space && free_space > window + (full_space >> 1) {
                free_space
            } else {
                window
            }
        };
        window.max(0) as u32
    }

    /// Mirrors `tcp_select_window` (net/ipv4/tcp_output.c): the window field
    /// of a non-SYN segment. The offered window never shrinks: if
    /// [`Self::raw_select_window`] is below what is left of the last offer
    /// (`tcp_receive_window`), that remainder, aligned up to the scale unit,
    /// is offered again. Records the offer in `rcv_wnd`/`rcv_wup`.
    pub fn select_window(&mut self) -> u16 {
        let cur_win = self.receive_window();
        let mut new_win = self.raw_select_window();
        if new_win < cur_win {
            new_win = cur_win.next_multiple_of(1 << self.rcv_wscale);
        }
        self.rcv_wnd = new_win;
        self.rcv_wup = self.rcv_nxt;
        let cap = if self.rcv_wscale == 0 && self.workaround_signed_windows {
            32767
        } else {
            65535u32 << self.rcv_wscale
        };
        (new_win.min(cap) >> self.rcv_wscale) as u16
    }

    /// Mirrors `tcp_init_buffer_space` (net/ipv4/tcp_input.c) as called from
    /// `tcp_init_transfer`: `window_clamp` drops to the full space less
    /// `1/2^tcp_app_win` of it and less one `advmss` ("force reservation of
    /// one segment"), and `rcv_ssthresh` to at most `window_clamp`. This is
    /// why, with the default 128 KiB `rcvbuf`, `__tcp_select_window` stays
    /// below the initial 64240 and the never-shrink rule decides the window.
    pub(super) fn init_buffer_space(&mut self) {
        self.sndbuf_expand();
        let maxwin = self.tcp_full_space().max(0) as u32;
        let app_win = self.app_win as u32;
        if self.window_clamp >= maxwin {
            self.window_clamp = maxwin;
            if app_win != 0 && maxwin > 4 * self.advmss {
                let reserve = if app_win >= 32 { 0 } else { maxwin >> app_win };
                self.window_clamp = (maxwin - reserve).max(4 * self.advmss);
            }
        }
        if app_win != 0
            && self.window_clamp > 2 * self.advmss
            && self.window_clamp + self.advmss > maxwin
        {
            self.window_clamp = (2 * self.advmss).max(maxwin.saturating_sub(self.advmss));
        }
        self.rcv_ssthresh = self.rcv_ssthresh.min(self.window_clamp);
    }

    /// Mirrors `tcp_set_window_clamp` (net/ipv4/tcp.c) on a socket past
    /// SYN-SENT, for a non-zero clamp: floored at `SOCK_MIN_RCVBUF / 2`; a
    /// smaller clamp pulls `rcv_ssthresh` down to it
    /// (`__tcp_adjust_rcv_ssthresh`, no memory reserved by `SO_RESERVE_MEM`
    /// here), a larger one lifts `rcv_ssthresh` to `min(rcv_wnd, clamp)`.
    pub(super) fn grow_or_shrink_window_clamp(&mut self, val: u32) {
        let old = self.window_clamp;
        let new = val.max(SOCK_MIN_RCVBUF / 2);
        if new == old {
            return;
        }
        self.window_clamp = new;
        if new < old {
            self.rcv_ssthresh = self.rcv_ssthresh.min(new);
        } else {
            self.rcv_ssthresh = self.rcv_ssthresh.max(self.rcv_wnd.min(new));
        }
    }

    /// Mirrors `tcp_grow_window` / `__tcp_grow_window` (net/ipv4/tcp_input.c):
    /// raise `rcv_ssthresh` towards `window_clamp` when segments are
    /// economical enough in truesize.
    pub(super) fn grow_window(&mut self, len: u32, truesize: u32) {
        let room = (self.window_clamp as i64).min(self.tcp_space()) - self.rcv_ssthresh as i64;
        if room <= 0 {
            return;
        }
        let incr = if self.win_from_space(truesize as i64) <= len as i64 {
            2 * self.advmss as i64
        } else {
            let mut ts = self.win_from_space(truesize as i64) >> 1;
            let rmem2 = self.rmem2 as i64;
            let mut window = self.win_from_space(rmem2) >> 1;
            let mut incr = 0;
            while self.rcv_ssthresh as i64 <= window {
                if ts <= len as i64 {
                    incr = 2 * self.ack.rcv_mss as i64;
                    break;
                }
                ts >>= 1;
                window >>= 1;
            }
            incr
        };
        if incr != 0 {
            let incr = incr.max(2 * len as i64);
            self.rcv_ssthresh += room.min(incr) as u32;
            self.ack.quick |= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(space: u32, mss: u32, clamp: u32) -> InitialWindow {
        select_initial_window(&Config::default(), space, mss, clamp, true, 0)
    }

    #[test]
    fn initial_window_table_4_3() {
        assert_eq!(
            (w(65536, 1460, 0).rcv_wnd, w(65536, 1460, 0).rcv_wscale),
            (64240, 10)
        );
        assert_eq!(w(65536, 1240, 0).rcv_wnd, 64480);
        assert_eq!(w(65536, 8960, 0).rcv_wnd, 62720);
        assert_eq!(w(65536, 536, 0).rcv_wnd, 65392);
        assert_eq!(w(65536, 100, 0).rcv_wnd, 65500);
        // SO_RCVBUF 4096: rcvbuf 8192, space = clamp = 4096.
        let r = w(full_space(8192), 1460, 4096);
        assert_eq!((r.rcv_wnd, r.rcv_wscale), (2920, 0));
        // SO_RCVBUF 1 MiB: rcvbuf 2 MiB, space = clamp = 1 MiB.
        let r = w(full_space(2 << 20), 1460, 1 << 20);
        assert_eq!((r.rcv_wnd, r.rcv_wscale), (1048280, 5));
        // TCP_WINDOW_CLAMP 10000 (scenario 42).
        let r = w(65536, 1460, 10000);
        assert_eq!((r.rcv_wnd, r.rcv_wscale), (8760, 0));
    }
}
