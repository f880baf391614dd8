// Original file: proto/allocator.proto


export interface ListRequest {
}

export interface ListRequest__Output {
}
