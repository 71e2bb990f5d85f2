//! Sliding sync extensions (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
//! receipts, MSC3961 typing): their request and response shapes.
