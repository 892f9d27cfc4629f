//! What a viewer's RTCP asks of the sending side, which only the encoder can answer:
//! - keyframe requests (PLI, FIR): the webrtc crate's interceptors act on inbound RTCP and stop it
//!   at the end of their chain, so this interceptor, last in the chain, marks these for the
//!   application (`TrackLocal::poll` then delivers them) and lets the rest stop. A browser that is
//!   not answered freezes on the last picture until the next periodic keyframe;
//! - the bit rate the congestion controller (GCC, fed by the viewer's transport-wide feedback)
//!   settles on, which the encoder is set to: it rides on the inbound feedback packet that moved it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where it sits: after every built-in interceptor (they see all of the inbound RTCP first).
pub const SLOT: usize = 14_000;

/// Whether `packet` asks for a keyframe.
pub fn is_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The congestion controller's latest target, in bits per second (0 before its first estimate).
#[derive(Clone, Default)]
pub struct TargetBitrate(Arc<AtomicU64>);

impl TargetBitrate {
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|b| *b > 0)
    }

    fn set(&self, bits_per_second: f64) {
        self.0
            .store(bits_per_second.max(1.0) as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Feedback {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    target: TargetBitrate,
}

impl Feedback {
    /// Reports the congestion controller's target to `target`.
    pub fn new(target: TargetBitrate) -> Feedback {
        Feedback {
            target,
            ..Feedback::default()
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Feedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        let changed = Attribute::TargetBitrateChanged {
            bits_per_second: 0.0,
        };
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) = msg.message.get(&changed)
        {
            self.target.set(*bits_per_second);
        }
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<_> = packets
                .iter()
                .filter(|p| is_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for Feedback {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
