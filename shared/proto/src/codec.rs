//! The codec every generated client and server uses: prost's, except that a request that
//! does not decode is INVALID_ARGUMENT (the caller sent bytes that are not the message),
//! with an ErrorInfo naming the service, where the stock codec answers INTERNAL.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstDecoder, ProstEncoder};

#[derive(Debug)]
pub struct ProstCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ProstCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for ProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + prost::Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::default())
    }
}

/// Prost's decoder, with undecodable bytes reported as INVALID_ARGUMENT.
#[derive(Debug)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: Message + prost::Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            let service = U::PACKAGE.split('.').nth(1).unwrap_or("custos");
            let mut details = tonic_types::ErrorDetails::new();
            details.set_error_info(
                "MALFORMED_MESSAGE",
                format!("{service}.custos"),
                std::collections::HashMap::new(),
            );
            <Status as tonic_types::StatusExt>::with_error_details(
                tonic::Code::InvalidArgument,
                format!(
                    "the message is not a valid {}: {}",
                    U::full_name(),
                    status.message()
                ),
                details,
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
