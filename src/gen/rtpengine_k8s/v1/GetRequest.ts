// Original file: proto/allocator.proto


export interface GetRequest {
  'uid'?: (string);
  'namespace'?: (string);
  'name'?: (string);
}

export interface GetRequest__Output {
  'uid': (string);
  'namespace': (string);
  'name': (string);
}
