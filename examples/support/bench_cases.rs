//! The bench's standalone cases: their names, the base each is compared
//! with, and how many tasks run them.

/// The cases, each listed once with its name.
macro_rules! cases {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Case {
            $($variant,)*
        }

        impl Case {
            pub(crate) const ALL: &'static [Case] = &[$(Case::$variant,)*];

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Case::$variant => $name,)*
                }
            }
        }
    };
}

cases! {
    RawC1 => "raw_c1",
    RawC64 => "raw_c64",
    RawManagerC64 => "raw_manager_c64",
    HandJsonC1 => "hand_json_c1",
    HandJsonC64 => "hand_json_c64",
    FredC64 => "fred_c64",
    FredPool4C64 => "fred_pool4_c64",
    TypedJsonC1 => "typed_json_c1",
    TypedJsonC64 => "typed_json_c64",
    TypedMsgpackC64 => "typed_msgpack_c64",
    TypedBincodeC64 => "typed_bincode_c64",
    CachedCrateC64 => "cached_crate_c64",
    ConnPerCallC1 => "conn_per_call_c1",
    SharedHandleC1 => "shared_handle_c1",
    GetMany100 => "get_many_100",
    SequentialGet100 => "sequential_get_100",
    L1HitC64 => "l1_hit_c64",
    GetOrLoadMany100 => "get_or_load_many_100",
    SequentialGetOrLoad100 => "sequential_get_or_load_100",
    GetOrLoadMany100Miss10 => "get_or_load_many_100_miss10",
    RawGetC64 => "raw_get_c64",
    FredGetC64 => "fred_get_c64",
    FredGetPool4C64 => "fred_get_pool4_c64",
    TypedGetC64 => "typed_get_c64",
    TypedGetC64Uncoalesced => "typed_get_c64_uncoalesced",
    TypedGetTaggedC64 => "typed_get_tagged_c64",
    TypedJson16kC64 => "typed_json_16k_c64",
    TypedJson16kLz4C64 => "typed_json_16k_lz4_c64",
}

impl Case {
    /// The case this one is compared with: the raw case at the same
    /// concurrency, or for `get_many_100`, the same keys read one by one;
    /// for compressed 16 KiB documents, the same uncompressed.
    pub(crate) fn raw(self) -> Case {
        match self {
            Case::GetMany100
            | Case::SequentialGet100
            | Case::GetOrLoadMany100
            | Case::SequentialGetOrLoad100
            | Case::GetOrLoadMany100Miss10 => Case::SequentialGet100,
            Case::RawC1
            | Case::HandJsonC1
            | Case::TypedJsonC1
            | Case::ConnPerCallC1
            | Case::SharedHandleC1 => Case::RawC1,
            Case::RawGetC64
            | Case::FredGetC64
            | Case::FredGetPool4C64
            | Case::TypedGetC64
            | Case::TypedGetC64Uncoalesced
            | Case::TypedGetTaggedC64 => Case::RawGetC64,
            Case::TypedJson16kC64 | Case::TypedJson16kLz4C64 => Case::TypedJson16kC64,
            _ => Case::RawC64,
        }
    }

    /// How many tasks run the case at once.
    pub(crate) fn concurrency(self) -> usize {
        match self.raw() {
            Case::RawC1 | Case::SequentialGet100 => 1,
            _ => 64,
        }
    }
}
