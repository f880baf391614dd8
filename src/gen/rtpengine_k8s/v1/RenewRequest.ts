// Original file: proto/allocator.proto


export interface RenewRequest {
  'uid'?: (string);
}

export interface RenewRequest__Output {
  'uid': (string);
}
