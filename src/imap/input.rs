//! Reading a command off the connection: lines, literals (synchronising ones asked for with
//! `+`, oversized ones refused), and what else can end the wait (EOF, timeouts, eviction,
//! shutdown).

use std::io;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::dispatch::APPEND_REFUSED;
use super::session::Session;
use super::wire;
use crate::shutdown::Phase;

/// Longest command line (without literals). Longer: BAD and the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;

pub(super) enum Input {
    Command(Vec<u8>),
    /// More bytes arrived (`read_more`).
    Data,
    /// A literal was refused before its data was sent: the command is over, with this answer.
    Refused {
        tag: Option<String>,
        code: &'static str,
        text: &'static str,
    },
    TooLong,
    Eof,
    Timeout,
    /// Not logged in, and evicted from the full pool of such connections by a newer one.
    Evicted,
    Shutdown,
}

impl Session {
    pub(super) fn read_deadline(&self) -> Instant {
        match self.principal {
            None => self.login_deadline,
            Some(_) => Instant::now() + self.ctx.settings.imap.idle_timeout,
        }
    }

    /// Reads more input, until `deadline` or shutdown.
    async fn read_more(&mut self, deadline: Instant) -> io::Result<Input> {
        let mut shutdown = self.ctx.shutdown.clone();
        let Session { stream, buf, prelogin, .. } = self;
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(16 * 1024);
        }
        let evicted = async {
            match prelogin {
                Some(slot) => slot.evicted().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => match read {
                Err(_) => Ok(Input::Timeout),
                Ok(Ok(0)) => Ok(Input::Eof),
                Ok(Ok(_)) => Ok(Input::Data),
                Ok(Err(e)) => Err(e),
            },
            _ = evicted => Ok(Input::Evicted),
            _ = shutdown.reached(Phase::Draining) => Ok(Input::Shutdown),
        }
    }

    /// One line (with its LF) off the input.
    pub(super) async fn read_line(&mut self, deadline: Instant) -> io::Result<Result<Vec<u8>, Input>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf) {
                if pos >= MAX_LINE {
                    return Ok(Err(Input::TooLong));
                }
                return Ok(Ok(self.buf.split_to(pos + 1).to_vec()));
            }
            if self.buf.len() >= MAX_LINE {
                return Ok(Err(Input::TooLong));
            }
            match self.read_more(deadline).await? {
                Input::Data => {}
                other => return Ok(Err(other)),
            }
        }
    }

    /// A complete command: its lines and literals, asking for each synchronising literal with
    /// `+` once its size is accepted.
    pub(super) async fn read_command(&mut self) -> io::Result<Input> {
        let max_literal = self.ctx.settings.imap.max_literal as u64;
        let max_command = 2 * (MAX_LINE as u64 + max_literal);
        let mut command = Vec::new();
        loop {
            let deadline = self.read_deadline();
            let line = match self.read_line(deadline).await? {
                Ok(line) => line,
                Err(input) => return Ok(input),
            };
            command.extend_from_slice(&line);
            let Some(literal) = wire::announced_literal(&line) else { return Ok(Input::Command(command)) };
            let tag = wire::tag_of(&command).map(str::to_string);
            if literal.len > max_literal || command.len() as u64 + literal.len > max_command {
                if !literal.sync {
                    // The data is on its way and would be read as commands: hang up instead.
                    return Ok(Input::TooLong);
                }
                return Ok(Input::Refused { tag, code: "TOOBIG", text: "Literal too large" });
            }
            if literal.sync && wire::verbs(&command, 1).first().is_some_and(|v| v == "APPEND") {
                // No point in receiving a message that cannot be stored.
                return Ok(Input::Refused { tag, code: "CANNOT", text: APPEND_REFUSED });
            }
            if literal.sync {
                self.out.line(b"+ Ready for literal data");
                self.flush().await?;
            }
            let len = literal.len as usize;
            while self.buf.len() < len {
                match self.read_more(deadline).await? {
                    Input::Data => {}
                    other => return Ok(other),
                }
            }
            command.extend_from_slice(&self.buf.split_to(len));
        }
    }
}
