// Original file: proto/allocator.proto


export interface ReleaseRequest {
  'uid'?: (string);
  'namespace'?: (string);
  'name'?: (string);
  'reason'?: (string);
}

export interface ReleaseRequest__Output {
  'uid': (string);
  'namespace': (string);
  'name': (string);
  'reason': (string);
}
